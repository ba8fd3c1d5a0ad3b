/* The conditional branches and the comparison each makes, once for every
 * engine (the interpreter builder's handlers, the recompiler's condition
 * codes): X(op name, condition), the register forms then the immediate
 * forms, in the interpreter handlers' order. */
#ifndef VMCORE_BRANCHES_H
#define VMCORE_BRANCHES_H

#define VM_BRANCHES_REG(X)                                                                       \
    X(branch_eq, EQ) X(branch_not_eq, NE) X(branch_less_unsigned, LTU) X(branch_less_signed, LTS) \
    X(branch_greater_or_equal_unsigned, GEU) X(branch_greater_or_equal_signed, GES)

#define VM_BRANCHES_IMM(X)                                                                                   \
    X(branch_eq_imm, EQ) X(branch_not_eq_imm, NE) X(branch_less_unsigned_imm, LTU)                            \
    X(branch_less_signed_imm, LTS) X(branch_greater_or_equal_unsigned_imm, GEU)                               \
    X(branch_greater_or_equal_signed_imm, GES) X(branch_less_or_equal_unsigned_imm, LEU)                      \
    X(branch_less_or_equal_signed_imm, LES) X(branch_greater_unsigned_imm, GTU)                               \
    X(branch_greater_signed_imm, GTS)

#endif
