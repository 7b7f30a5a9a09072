package fsformat

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyDeep(t *testing.T) {
	for _, fx := range goodFixtures {
		if err := Verify(filepath.Join(fixtures, fx.path), VerifyOptions{Deep: true}); err != nil {
			t.Errorf("%s: %v", fx.path, err)
		}
	}
	for name, want := range map[string]string{
		"basic-badback.fs": "invalid back pointer at 36990: 1845 is not an earlier record of oid 0x0000000000000001",
		"basic-badprev.fs": "basic-badprev.fs incorrect previous pointer at 36167:",
	} {
		err := Verify(filepath.Join(fixtures, "damaged", name), VerifyOptions{Deep: true})
		var ve *VerifyError
		if !errors.As(err, &ve) || !strings.Contains(ve.Msg, want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
		if err := Verify(filepath.Join(fixtures, "damaged", name), VerifyOptions{}); err != nil {
			t.Errorf("%s without Deep (fstest passes it): %v", name, err)
		}
	}
}
