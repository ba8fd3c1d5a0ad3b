%isa = jam_v1
%import scale
// The demo guest: sums scale(i) for i in 0..n-1, asking the host for each
// term through import #0 ("scale").
// in: a0 = n; returns a0 = the sum (wrapping u64)
pub @main:
    s0 = a0
    s1 = 0
    a2 = 0
    jump @done if s0 == 0
@loop:
    a0 = s1
    ecalli 0
    a2 = a2 + a0
    s1 = s1 + 1
    jump @loop if s1 <u s0
@done:
    a0 = a2
    ret
