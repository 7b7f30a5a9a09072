package commands

import (
	"bytes"
	"os"
	"testing"

	"github.com/fatih/color"
)

func TestPaint(t *testing.T) {
	if got := paint(false, "x", color.FgRed); got != "x" {
		t.Errorf("paint off: %q", got)
	}
	if got := paint(true, "x", color.FgRed); got != "\x1b[31mx\x1b[0m" {
		t.Errorf("paint on: %q", got)
	}
}

func TestColorsOnlyOnTerminalWithoutNoColor(t *testing.T) {
	if colorsFor(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if colorsFor(f) {
		t.Error("a regular file is not a terminal")
	}
	t.Setenv("NO_COLOR", "1")
	if colorsFor(os.Stdout) {
		t.Error("NO_COLOR set: no colour")
	}
}

// Errors written to a pipe or file carry no escape codes.
func TestErrorLinePlainWhenNotATerminal(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run([]string{"zodbctl", "fsdump", "/nonexistent/Data.fs"}, &out, &errb)
	if code == 0 || bytes.Contains(errb.Bytes(), []byte("\x1b[")) || errb.Len() == 0 {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
