package pickle

import (
	"fmt"

	"github.com/zodbctl/zodbctl/fsformat/pickle/opcode"
)

// opName is pickletools' name of op, or its hex value for a byte that is no
// opcode.
func opName(op byte) string {
	if n := opcode.Name(op); n != "" {
		return n
	}
	return fmt.Sprintf("%#02x", op)
}
