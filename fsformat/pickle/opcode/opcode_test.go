package opcode

import "testing"

func TestNames(t *testing.T) {
	n := 0
	for op := range 256 {
		if Name(byte(op)) != "" {
			n++
		}
	}
	// pickletools.opcodes lists 68 opcodes for protocols 0–5.
	if n != 68 {
		t.Errorf("%d named opcodes, want 68", n)
	}
	for op, want := range map[byte]string{BinPut: "BINPUT", ShortBinUnicode: "SHORT_BINUNICODE", Proto: "PROTO", ReadOnlyBuffer: "READONLY_BUFFER", 0: ""} {
		if got := Name(op); got != want {
			t.Errorf("Name(%#x) = %q, want %q", op, got, want)
		}
	}
}
