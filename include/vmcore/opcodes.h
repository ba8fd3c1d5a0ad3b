/* The instruction sets: one table, every ISA a column.
 *
 * X(name, format, revive_v1, latest32, latest64, jam_v1, flags)
 * An opcode byte of -1 means the instruction does not exist in that ISA.
 * Everything else (the C decoder's lookup tables, the interpreter's handler
 * table, Python's vmcore.isa) is derived from this list; the numbers are the
 * PolkaVM program format's.
 */
#ifndef VMCORE_OPCODES_H
#define VMCORE_OPCODES_H

/* Operand formats (how the bytes after the opcode are laid out). */
#define VM_FORMATS(X) \
    X(ARGLESS)         \
    X(REG_IMM)         \
    X(REG_IMM_OFFSET)  \
    X(REG_IMM_IMM)     \
    X(REG_REG_IMM)     \
    X(REG_REG_OFFSET)  \
    X(REG_REG_REG)     \
    X(OFFSET)          \
    X(IMM)             \
    X(IMM_IMM)         \
    X(REG_REG)         \
    X(REG_REG_IMM_IMM) \
    X(REG_IMM64)

/* Instruction sets, in blob-version order (the byte after the magic). */
#define VM_ISAS(X)      \
    X(REVIVE_V1, "revive_v1", 1) \
    X(LATEST32, "latest32", 0)   \
    X(LATEST64, "latest64", 1)   \
    X(JAM_V1, "jam_v1", 1)

/* Flags: the instruction ends a basic block (the next one may be a jump
 * target); a terminator also cannot fall through to the next instruction. */
#define VM_F_ENDS_BLOCK 1
#define VM_F_TERMINATOR 3

#define VM_OPCODES(X) \
    X(trap,                                    ARGLESS,            0,    0,    0,    0, VM_F_TERMINATOR) \
    X(fallthrough,                             ARGLESS,            1,    1,    1,    1, VM_F_ENDS_BLOCK) \
    X(memset,                                  ARGLESS,           -1,    2,    2,   -1, 0) \
    X(unlikely,                                ARGLESS,           -1,    3,    3,    2, 0) \
    X(jump_indirect,                           REG_IMM,           50,   50,   50,   50, VM_F_TERMINATOR) \
    X(load_imm,                                REG_IMM,           51,   51,   51,   51, 0) \
    X(load_u8,                                 REG_IMM,           52,   52,   52,   52, 0) \
    X(load_i8,                                 REG_IMM,           53,   53,   53,   53, 0) \
    X(load_u16,                                REG_IMM,           54,   54,   54,   54, 0) \
    X(load_i16,                                REG_IMM,           55,   55,   55,   55, 0) \
    X(load_i32,                                REG_IMM,           57,   57,   57,   57, 0) \
    X(load_u32,                                REG_IMM,           56,   -1,   56,   56, 0) \
    X(load_u64,                                REG_IMM,           58,   -1,   58,   58, 0) \
    X(store_u8,                                REG_IMM,           59,   59,   59,   59, 0) \
    X(store_u16,                               REG_IMM,           60,   60,   60,   60, 0) \
    X(store_u32,                               REG_IMM,           61,   61,   61,   61, 0) \
    X(store_u64,                               REG_IMM,           62,   -1,   62,   62, 0) \
    X(load_imm_and_jump,                       REG_IMM_OFFSET,    80,   80,   80,   80, VM_F_TERMINATOR) \
    X(branch_eq_imm,                           REG_IMM_OFFSET,    81,   81,   81,   81, VM_F_ENDS_BLOCK) \
    X(branch_not_eq_imm,                       REG_IMM_OFFSET,    82,   82,   82,   82, VM_F_ENDS_BLOCK) \
    X(branch_less_unsigned_imm,                REG_IMM_OFFSET,    83,   83,   83,   83, VM_F_ENDS_BLOCK) \
    X(branch_less_signed_imm,                  REG_IMM_OFFSET,    87,   87,   87,   87, VM_F_ENDS_BLOCK) \
    X(branch_greater_or_equal_unsigned_imm,    REG_IMM_OFFSET,    85,   85,   85,   85, VM_F_ENDS_BLOCK) \
    X(branch_greater_or_equal_signed_imm,      REG_IMM_OFFSET,    89,   89,   89,   89, VM_F_ENDS_BLOCK) \
    X(branch_less_or_equal_signed_imm,         REG_IMM_OFFSET,    88,   88,   88,   88, VM_F_ENDS_BLOCK) \
    X(branch_less_or_equal_unsigned_imm,       REG_IMM_OFFSET,    84,   84,   84,   84, VM_F_ENDS_BLOCK) \
    X(branch_greater_signed_imm,               REG_IMM_OFFSET,    90,   90,   90,   90, VM_F_ENDS_BLOCK) \
    X(branch_greater_unsigned_imm,             REG_IMM_OFFSET,    86,   86,   86,   86, VM_F_ENDS_BLOCK) \
    X(store_imm_indirect_u8,                   REG_IMM_IMM,       70,   70,   70,   70, 0) \
    X(store_imm_indirect_u16,                  REG_IMM_IMM,       71,   71,   71,   71, 0) \
    X(store_imm_indirect_u32,                  REG_IMM_IMM,       72,   72,   72,   72, 0) \
    X(store_imm_indirect_u64,                  REG_IMM_IMM,       73,   -1,   73,   73, 0) \
    X(store_indirect_u8,                       REG_REG_IMM,      120,  120,  120,  120, 0) \
    X(store_indirect_u16,                      REG_REG_IMM,      121,  121,  121,  121, 0) \
    X(store_indirect_u32,                      REG_REG_IMM,      122,  122,  122,  122, 0) \
    X(store_indirect_u64,                      REG_REG_IMM,      123,   -1,  123,  123, 0) \
    X(load_indirect_u8,                        REG_REG_IMM,      124,  124,  124,  124, 0) \
    X(load_indirect_i8,                        REG_REG_IMM,      125,  125,  125,  125, 0) \
    X(load_indirect_u16,                       REG_REG_IMM,      126,  126,  126,  126, 0) \
    X(load_indirect_i16,                       REG_REG_IMM,      127,  127,  127,  127, 0) \
    X(load_indirect_i32,                       REG_REG_IMM,      129,  129,  129,  129, 0) \
    X(load_indirect_u32,                       REG_REG_IMM,      128,   -1,  128,  128, 0) \
    X(load_indirect_u64,                       REG_REG_IMM,      130,   -1,  130,  130, 0) \
    X(add_imm_32,                              REG_REG_IMM,      131,  131,  131,  131, 0) \
    X(add_imm_64,                              REG_REG_IMM,      149,   -1,  149,  149, 0) \
    X(and_imm,                                 REG_REG_IMM,      132,  132,  132,  132, 0) \
    X(xor_imm,                                 REG_REG_IMM,      133,  133,  133,  133, 0) \
    X(or_imm,                                  REG_REG_IMM,      134,  134,  134,  134, 0) \
    X(mul_imm_32,                              REG_REG_IMM,      135,  135,  135,  135, 0) \
    X(mul_imm_64,                              REG_REG_IMM,      150,   -1,  150,  150, 0) \
    X(set_less_than_unsigned_imm,              REG_REG_IMM,      136,  136,  136,  136, 0) \
    X(set_less_than_signed_imm,                REG_REG_IMM,      137,  137,  137,  137, 0) \
    X(shift_logical_left_imm_32,               REG_REG_IMM,      138,  138,  138,  138, 0) \
    X(shift_logical_left_imm_64,               REG_REG_IMM,      151,   -1,  151,  151, 0) \
    X(shift_logical_right_imm_32,              REG_REG_IMM,      139,  139,  139,  139, 0) \
    X(shift_logical_right_imm_64,              REG_REG_IMM,      152,   -1,  152,  152, 0) \
    X(shift_arithmetic_right_imm_32,           REG_REG_IMM,      140,  140,  140,  140, 0) \
    X(shift_arithmetic_right_imm_64,           REG_REG_IMM,      153,   -1,  153,  153, 0) \
    X(negate_and_add_imm_32,                   REG_REG_IMM,      141,  141,  141,  141, 0) \
    X(negate_and_add_imm_64,                   REG_REG_IMM,      154,   -1,  154,  154, 0) \
    X(set_greater_than_unsigned_imm,           REG_REG_IMM,      142,  142,  142,  142, 0) \
    X(set_greater_than_signed_imm,             REG_REG_IMM,      143,  143,  143,  143, 0) \
    X(shift_logical_right_imm_alt_32,          REG_REG_IMM,      145,  145,  145,  145, 0) \
    X(shift_logical_right_imm_alt_64,          REG_REG_IMM,      156,   -1,  156,  156, 0) \
    X(shift_arithmetic_right_imm_alt_32,       REG_REG_IMM,      146,  146,  146,  146, 0) \
    X(shift_arithmetic_right_imm_alt_64,       REG_REG_IMM,      157,   -1,  157,  157, 0) \
    X(shift_logical_left_imm_alt_32,           REG_REG_IMM,      144,  144,  144,  144, 0) \
    X(shift_logical_left_imm_alt_64,           REG_REG_IMM,      155,   -1,  155,  155, 0) \
    X(cmov_if_zero_imm,                        REG_REG_IMM,      147,  147,  147,  147, 0) \
    X(cmov_if_not_zero_imm,                    REG_REG_IMM,      148,  148,  148,  148, 0) \
    X(rotate_right_imm_32,                     REG_REG_IMM,      160,  160,  160,  160, 0) \
    X(rotate_right_imm_alt_32,                 REG_REG_IMM,      161,  161,  161,  161, 0) \
    X(rotate_right_imm_64,                     REG_REG_IMM,      158,   -1,  158,  158, 0) \
    X(rotate_right_imm_alt_64,                 REG_REG_IMM,      159,   -1,  159,  159, 0) \
    X(branch_eq,                               REG_REG_OFFSET,   170,  170,  170,  170, VM_F_ENDS_BLOCK) \
    X(branch_not_eq,                           REG_REG_OFFSET,   171,  171,  171,  171, VM_F_ENDS_BLOCK) \
    X(branch_less_unsigned,                    REG_REG_OFFSET,   172,  172,  172,  172, VM_F_ENDS_BLOCK) \
    X(branch_less_signed,                      REG_REG_OFFSET,   173,  173,  173,  173, VM_F_ENDS_BLOCK) \
    X(branch_greater_or_equal_unsigned,        REG_REG_OFFSET,   174,  174,  174,  174, VM_F_ENDS_BLOCK) \
    X(branch_greater_or_equal_signed,          REG_REG_OFFSET,   175,  175,  175,  175, VM_F_ENDS_BLOCK) \
    X(add_32,                                  REG_REG_REG,      190,  190,  190,  190, 0) \
    X(add_64,                                  REG_REG_REG,      200,   -1,  200,  200, 0) \
    X(sub_32,                                  REG_REG_REG,      191,  191,  191,  191, 0) \
    X(sub_64,                                  REG_REG_REG,      201,   -1,  201,  201, 0) \
    X(and,                                     REG_REG_REG,      210,  210,  210,  210, 0) \
    X(xor,                                     REG_REG_REG,      211,  211,  211,  211, 0) \
    X(or,                                      REG_REG_REG,      212,  212,  212,  212, 0) \
    X(mul_32,                                  REG_REG_REG,      192,  192,  192,  192, 0) \
    X(mul_64,                                  REG_REG_REG,      202,   -1,  202,  202, 0) \
    X(mul_upper_signed_signed,                 REG_REG_REG,      213,  213,  213,  213, 0) \
    X(mul_upper_unsigned_unsigned,             REG_REG_REG,      214,  214,  214,  214, 0) \
    X(mul_upper_signed_unsigned,               REG_REG_REG,      215,  215,  215,  215, 0) \
    X(set_less_than_unsigned,                  REG_REG_REG,      216,  216,  216,  216, 0) \
    X(set_less_than_signed,                    REG_REG_REG,      217,  217,  217,  217, 0) \
    X(shift_logical_left_32,                   REG_REG_REG,      197,  197,  197,  197, 0) \
    X(shift_logical_left_64,                   REG_REG_REG,      207,   -1,  207,  207, 0) \
    X(shift_logical_right_32,                  REG_REG_REG,      198,  198,  198,  198, 0) \
    X(shift_logical_right_64,                  REG_REG_REG,      208,   -1,  208,  208, 0) \
    X(shift_arithmetic_right_32,               REG_REG_REG,      199,  199,  199,  199, 0) \
    X(shift_arithmetic_right_64,               REG_REG_REG,      209,   -1,  209,  209, 0) \
    X(div_unsigned_32,                         REG_REG_REG,      193,  193,  193,  193, 0) \
    X(div_unsigned_64,                         REG_REG_REG,      203,   -1,  203,  203, 0) \
    X(div_signed_32,                           REG_REG_REG,      194,  194,  194,  194, 0) \
    X(div_signed_64,                           REG_REG_REG,      204,   -1,  204,  204, 0) \
    X(rem_unsigned_32,                         REG_REG_REG,      195,  195,  195,  195, 0) \
    X(rem_unsigned_64,                         REG_REG_REG,      205,   -1,  205,  205, 0) \
    X(rem_signed_32,                           REG_REG_REG,      196,  196,  196,  196, 0) \
    X(rem_signed_64,                           REG_REG_REG,      206,   -1,  206,  206, 0) \
    X(cmov_if_zero,                            REG_REG_REG,      218,  218,  218,  218, 0) \
    X(cmov_if_not_zero,                        REG_REG_REG,      219,  219,  219,  219, 0) \
    X(and_inverted,                            REG_REG_REG,      224,  224,  224,  224, 0) \
    X(or_inverted,                             REG_REG_REG,      225,  225,  225,  225, 0) \
    X(xnor,                                    REG_REG_REG,      226,  226,  226,  226, 0) \
    X(maximum,                                 REG_REG_REG,      227,  227,  227,  227, 0) \
    X(maximum_unsigned,                        REG_REG_REG,      228,  228,  228,  228, 0) \
    X(minimum,                                 REG_REG_REG,      229,  229,  229,  229, 0) \
    X(minimum_unsigned,                        REG_REG_REG,      230,  230,  230,  230, 0) \
    X(rotate_left_32,                          REG_REG_REG,      221,  221,  221,  221, 0) \
    X(rotate_left_64,                          REG_REG_REG,      220,   -1,  220,  220, 0) \
    X(rotate_right_32,                         REG_REG_REG,      223,  223,  223,  223, 0) \
    X(rotate_right_64,                         REG_REG_REG,      222,   -1,  222,  222, 0) \
    X(jump,                                    OFFSET,            40,   40,   40,   40, VM_F_TERMINATOR) \
    X(ecalli,                                  IMM,               10,   10,   10,   10, 0) \
    X(store_imm_u8,                            IMM_IMM,           30,   30,   30,   30, 0) \
    X(store_imm_u16,                           IMM_IMM,           31,   31,   31,   31, 0) \
    X(store_imm_u32,                           IMM_IMM,           32,   32,   32,   32, 0) \
    X(store_imm_u64,                           IMM_IMM,           33,   -1,   33,   33, 0) \
    X(move_reg,                                REG_REG,          100,  100,  100,  100, 0) \
    X(sbrk,                                    REG_REG,           -1,  101,  101,   -1, 0) \
    X(count_leading_zero_bits_32,              REG_REG,          105,  105,  105,  104, 0) \
    X(count_leading_zero_bits_64,              REG_REG,          104,   -1,  104,  103, 0) \
    X(count_trailing_zero_bits_32,             REG_REG,          107,  107,  107,  106, 0) \
    X(count_trailing_zero_bits_64,             REG_REG,          106,   -1,  106,  105, 0) \
    X(count_set_bits_32,                       REG_REG,          103,  103,  103,  102, 0) \
    X(count_set_bits_64,                       REG_REG,          102,   -1,  102,  101, 0) \
    X(sign_extend_8,                           REG_REG,          108,  108,  108,  107, 0) \
    X(sign_extend_16,                          REG_REG,          109,  109,  109,  108, 0) \
    X(zero_extend_16,                          REG_REG,          110,  110,  110,  109, 0) \
    X(reverse_byte,                            REG_REG,          111,  111,  111,  110, 0) \
    X(load_imm_and_jump_indirect,              REG_REG_IMM_IMM,  180,  180,  180,  180, VM_F_TERMINATOR) \
    X(load_imm64,                              REG_IMM64,         20,   -1,   20,   20, 0)

#endif
