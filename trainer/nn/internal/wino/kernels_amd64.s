//go:build amd64 && !purego

#include "textflag.h"

// AVX2 kernels of the Winograd F(2×2, 3×3) tile transforms for one 16×16
// plane with padding 1 (8×8 tiles, one YMM register per tile row of 8
// tiles). Each computes exactly what its Go twin in trainer/nn/winograd_tiles.go
// computes for that plane, with the same operations in the same order
// (nn's TestWinogradKernelsMatchGo); see there for the algebra. Go assembler
// operand order: VSUBPS b, a, d is d = a − b.

// Lane permutations: shr moves lane j to j+1, shl moves lane j+1 to j (the
// lane that falls off is replaced by zero with a blend).
DATA shr<>+0(SB)/4, $0
DATA shr<>+4(SB)/4, $0
DATA shr<>+8(SB)/4, $1
DATA shr<>+12(SB)/4, $2
DATA shr<>+16(SB)/4, $3
DATA shr<>+20(SB)/4, $4
DATA shr<>+24(SB)/4, $5
DATA shr<>+28(SB)/4, $6
GLOBL shr<>(SB), RODATA|NOPTR, $32

DATA shl<>+0(SB)/4, $1
DATA shl<>+4(SB)/4, $2
DATA shl<>+8(SB)/4, $3
DATA shl<>+12(SB)/4, $4
DATA shl<>+16(SB)/4, $5
DATA shl<>+20(SB)/4, $6
DATA shl<>+24(SB)/4, $7
DATA shl<>+28(SB)/4, $7
GLOBL shl<>(SB), RODATA|NOPTR, $32

DATA sign<>+0(SB)/4, $0x80000000
DATA sign<>+4(SB)/4, $0x80000000
DATA sign<>+8(SB)/4, $0x80000000
DATA sign<>+12(SB)/4, $0x80000000
DATA sign<>+16(SB)/4, $0x80000000
DATA sign<>+20(SB)/4, $0x80000000
DATA sign<>+24(SB)/4, $0x80000000
DATA sign<>+28(SB)/4, $0x80000000
GLOBL sign<>(SB), RODATA|NOPTR, $32

// SPLIT loads the 16 floats at off(R) and splits them into the odd-indexed
// (ODD) and even-indexed (EVEN) ones, in order; clobbers Y10, Y11.
#define SPLIT(off, R, ODD, EVEN) \
	VMOVUPS off(R), Y10 \
	VMOVUPS off+32(R), Y11 \
	VSHUFPS $0xDD, Y11, Y10, ODD \
	VPERMPD $0xD8, ODD, ODD \
	VSHUFPS $0x88, Y11, Y10, EVEN \
	VPERMPD $0xD8, EVEN, EVEN

// JOIN stores A0 B0 A1 B1 ... A7 B7 at off(R); clobbers Y10, Y11, Y12.
#define JOIN(A, B, off, R) \
	VUNPCKLPS B, A, Y10 \
	VUNPCKHPS B, A, Y11 \
	VPERM2F128 $0x20, Y11, Y10, Y12 \
	VMOVUPS Y12, off(R) \
	VPERM2F128 $0x31, Y11, Y10, Y12 \
	VMOVUPS Y12, off+32(R)

// func Input16(v, x *float32, stride uintptr)
//
// V = Bᵀ d B of the 64 tiles of the 16×16 plane x, padded by 1, into
// v[ξ·ct + ty·8 + tx].
TEXT ·Input16(SB), NOSPLIT, $0-24
	MOVQ v+0(FP), DI
	MOVQ x+8(FP), DX
	MOVQ stride+16(FP), BX
	SHLQ $2, BX               // ξ stride in bytes
	LEAQ (BX)(BX*2), R8       // 3 strides
	MOVQ BX, R9
	SHLQ $2, R9               // 4 strides
	MOVQ BX, R10
	SHLQ $4, R10
	SUBQ $32, R10             // 16 strides − one tile row
	VMOVUPS shr<>(SB), Y14
	VMOVUPS shl<>(SB), Y15
	VXORPS Y13, Y13, Y13
	XORQ CX, CX               // ty

inrow:
	// The tile row reads input rows 2ty−1 .. 2ty+2 (zero outside), at
	// DX−64 .. DX+128; each split into its odd columns (the split row's E
	// half from column 1) and even columns (its O half).
	CMPQ CX, $0
	JNE  inr0
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	JMP  inr1
inr0:
	SPLIT(-64, DX, Y0, Y1)
inr1:
	SPLIT(0, DX, Y2, Y3)
	SPLIT(64, DX, Y4, Y5)
	CMPQ CX, $7
	JNE  inr3
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	JMP  incol
inr3:
	SPLIT(128, DX, Y6, Y7)

incol:
	// Bᵀ down the rows r0..r3 = (Y0,Y1) (Y2,Y3) (Y4,Y5) (Y6,Y7):
	// c0 = r0−r2, c1 = r1+r2, c2 = r2−r1, c3 = r1−r3, for both halves.
	VSUBPS Y4, Y0, Y0         // c0
	VSUBPS Y5, Y1, Y1
	VADDPS Y4, Y2, Y8         // c1
	VADDPS Y5, Y3, Y9
	VSUBPS Y2, Y4, Y4         // c2
	VSUBPS Y3, Y5, Y5
	VSUBPS Y6, Y2, Y6         // c3
	VSUBPS Y7, Y3, Y7

	// B across each c = (E1, O0): E0 = E1 shifted right, O1 = O0 shifted
	// left; d0 = E0−E1, d1 = O0+E1, d2 = E1−O0, d3 = O0−O1.
#define ROWPASS(E1, O0) \
	VPERMPS E1, Y14, Y10 \
	VBLENDPS $0x01, Y13, Y10, Y10 \
	VPERMPS O0, Y15, Y11 \
	VBLENDPS $0x80, Y13, Y11, Y11 \
	VSUBPS E1, Y10, Y12 \
	VMOVUPS Y12, (DI) \
	VADDPS E1, O0, Y12 \
	VMOVUPS Y12, (DI)(BX*1) \
	VSUBPS O0, E1, Y12 \
	VMOVUPS Y12, (DI)(BX*2) \
	VSUBPS Y11, O0, Y12 \
	VMOVUPS Y12, (DI)(R8*1) \
	ADDQ R9, DI

	ROWPASS(Y0, Y1)
	ROWPASS(Y8, Y9)
	ROWPASS(Y4, Y5)
	ROWPASS(Y6, Y7)
#undef ROWPASS

	SUBQ R10, DI
	ADDQ $128, DX
	INCQ CX
	CMPQ CX, $8
	JLT  inrow
	VZEROUPPER
	RET

// func Output16(y, m *float32, stride uintptr, bias float32)
//
// Y = Aᵀ M A + bias of the 64 tiles of m[ξ·kt + ty·8 + tx] into the 16×16
// plane y.
TEXT ·Output16(SB), NOSPLIT, $0-28
	MOVQ y+0(FP), DI
	MOVQ m+8(FP), AX
	MOVQ stride+16(FP), BX
	VBROADCASTSS bias+24(FP), Y13
	SHLQ $2, BX               // ξ stride in bytes
	MOVQ BX, R9
	SHLQ $2, R9               // 4 strides
	LEAQ (R9)(R9*2), R11      // 12 strides
	XORQ CX, CX

outrow:
	// Aᵀ down column j: s_j = (m_j + m_{4+j}) + m_{8+j},
	// t_j = (m_{4+j} − m_{8+j}) − m_{12+j}.
#define COLSUM(S, T) \
	VMOVUPS (AX), Y8 \
	VMOVUPS (AX)(R9*1), Y9 \
	VMOVUPS (AX)(R9*2), Y10 \
	VMOVUPS (AX)(R11*1), Y11 \
	VADDPS Y9, Y8, S \
	VADDPS Y10, S, S \
	VSUBPS Y10, Y9, T \
	VSUBPS Y11, T, T \
	ADDQ BX, AX

	COLSUM(Y0, Y4)
	COLSUM(Y1, Y5)
	COLSUM(Y2, Y6)
	COLSUM(Y3, Y7)
#undef COLSUM
	SUBQ R9, AX
	ADDQ $32, AX

	// A across: y00 = ((s0+s1)+s2)+b, y01 = ((s1−s2)−s3)+b, and the same
	// of t for the second output row.
	VADDPS Y1, Y0, Y0
	VADDPS Y2, Y0, Y0
	VADDPS Y13, Y0, Y0
	VSUBPS Y2, Y1, Y1
	VSUBPS Y3, Y1, Y1
	VADDPS Y13, Y1, Y1
	VADDPS Y5, Y4, Y4
	VADDPS Y6, Y4, Y4
	VADDPS Y13, Y4, Y4
	VSUBPS Y6, Y5, Y5
	VSUBPS Y7, Y5, Y5
	VADDPS Y13, Y5, Y5
	JOIN(Y0, Y1, 0, DI)
	JOIN(Y4, Y5, 64, DI)

	ADDQ $128, DI
	INCQ CX
	CMPQ CX, $8
	JLT  outrow
	VZEROUPPER
	RET

// func OutputT16(dm, dy *float32, stride uintptr)
//
// dM = A dY Aᵀ of the 64 tiles of the 16×16 plane dy into
// dm[ξ·kt + ty·8 + tx].
TEXT ·OutputT16(SB), NOSPLIT, $0-24
	MOVQ dm+0(FP), DI
	MOVQ dy+8(FP), DX
	MOVQ stride+16(FP), BX
	SHLQ $2, BX
	LEAQ (BX)(BX*2), R8
	MOVQ BX, R9
	SHLQ $2, R9
	MOVQ BX, R10
	SHLQ $4, R10
	SUBQ $32, R10
	XORQ CX, CX

otrow:
	// The tile row's two output rows: a b (row 2ty), c d (row 2ty+1), each
	// split into even (a, c) and odd (b, d) columns.
	SPLIT(0, DX, Y1, Y0)      // Y0 = a, Y1 = b
	SPLIT(64, DX, Y3, Y2)     // Y2 = c, Y3 = d

	// Row (u, v) of A dY gives (u, u+v, u−v, −v) along the tile's row.
#define EMIT(U, V) \
	VMOVUPS U, (DI) \
	VADDPS V, U, Y12 \
	VMOVUPS Y12, (DI)(BX*1) \
	VSUBPS V, U, Y12 \
	VMOVUPS Y12, (DI)(BX*2) \
	VXORPS sign<>(SB), V, Y12 \
	VMOVUPS Y12, (DI)(R8*1) \
	ADDQ R9, DI

	EMIT(Y0, Y1)              // (a, b)
	VADDPS Y2, Y0, Y4         // (a+c, b+d)
	VADDPS Y3, Y1, Y5
	EMIT(Y4, Y5)
	VSUBPS Y2, Y0, Y4         // (a−c, b−d)
	VSUBPS Y3, Y1, Y5
	EMIT(Y4, Y5)
	VXORPS sign<>(SB), Y2, Y4 // (−c, −d)
	VXORPS sign<>(SB), Y3, Y5
	EMIT(Y4, Y5)
#undef EMIT

	SUBQ R10, DI
	ADDQ $128, DX
	INCQ CX
	CMPQ CX, $8
	JLT  otrow
	VZEROUPPER
	RET

// func InputT16(dx, dv *float32, stride uintptr)
//
// The adjoint of Input16: the 16×16 plane dx gets the sum over tiles of
// B dV Bᵀ from dv[ξ·ct + ty·8 + tx], each tile added where it was read. Row
// 2ty of the padded plane gets tile row ty−1's third row and tile row ty's
// first; its E half (padded columns 2..16) and O half (columns 1..15) are
// what dx keeps of it.
TEXT ·InputT16(SB), NOSPLIT, $0-24
	MOVQ dx+0(FP), DX
	MOVQ dv+8(FP), AX
	MOVQ stride+16(FP), BX
	SHLQ $2, BX
	LEAQ (BX)(BX*2), R8
	MOVQ BX, R9
	SHLQ $2, R9
	MOVQ BX, R10
	SHLQ $4, R10
	SUBQ $32, R10
	VMOVUPS shr<>(SB), Y14
	VMOVUPS shl<>(SB), Y15
	VXORPS Y13, Y13, Y13
	// Pending sums of padded rows 2ty (Y0 = E, Y1 = O) and 2ty+1 (Y2, Y3).
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ CX, CX

	// CPASS(A, B, C, D, T): the adjoint of B across the tiles of row i for
	// f0..f3 = dV_{4i..4i+3} (loaded into A..D): g = (f1+f2)−f0,
	// h = (f1−f2)+f3; E = g + (f0 shifted left) into T, O = (−f3 shifted
	// right) + h into B.
#define CPASS(A, B, C, D, T) \
	VMOVUPS (AX), A \
	VMOVUPS (AX)(BX*1), B \
	VMOVUPS (AX)(BX*2), C \
	VMOVUPS (AX)(R8*1), D \
	ADDQ R9, AX \
	VADDPS C, B, T \
	VSUBPS A, T, T \
	VSUBPS C, B, B \
	VADDPS D, B, B \
	VPERMPS A, Y15, C \
	VBLENDPS $0x80, Y13, C, C \
	VADDPS C, T, T \
	VXORPS sign<>(SB), D, D \
	VPERMPS D, Y14, D \
	VBLENDPS $0x01, Y13, D, D \
	VADDPS B, D, B

itrow:
	CPASS(Y8, Y5, Y10, Y11, Y4) // c0 = (Y4, Y5)
	VADDPS Y4, Y0, Y0           // padded row 2ty: pending + c0
	VADDPS Y5, Y1, Y1
	CMPQ CX, $0
	JEQ  itc1
	JOIN(Y1, Y0, -64, DX)       // input row 2ty−1
itc1:
	CPASS(Y8, Y7, Y10, Y11, Y6) // c1 = (Y6, Y7)
	CPASS(Y10, Y9, Y11, Y12, Y8) // c2 = (Y8, Y9)
	VADDPS Y8, Y6, Y10          // c1 + c2
	VADDPS Y9, Y7, Y11
	VSUBPS Y8, Y6, Y6           // c1 − c2
	VSUBPS Y9, Y7, Y7
	VSUBPS Y4, Y10, Y10         // (c1 + c2) − c0
	VSUBPS Y5, Y11, Y11
	VADDPS Y10, Y13, Y0         // pending row 2ty+2: 0 + that
	VADDPS Y11, Y13, Y1
	CPASS(Y8, Y9, Y10, Y11, Y12) // c3 = (Y12, Y9)
	VADDPS Y12, Y6, Y6          // (c1 − c2) + c3
	VADDPS Y9, Y7, Y7
	VADDPS Y6, Y2, Y6           // padded row 2ty+1: pending + that
	VADDPS Y7, Y3, Y7
	VSUBPS Y12, Y13, Y2         // pending row 2ty+3: 0 − c3
	VSUBPS Y9, Y13, Y3
	JOIN(Y7, Y6, 0, DX)         // input row 2ty
#undef CPASS

	SUBQ R10, AX
	ADDQ $128, DX
	INCQ CX
	CMPQ CX, $8
	JLT  itrow
	JOIN(Y1, Y0, -64, DX)       // input row 15 (padded row 16)
	VZEROUPPER
	RET
