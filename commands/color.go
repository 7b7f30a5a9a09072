package commands

import (
	"io"
	"os"

	"github.com/fatih/color"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal (tables and colour are for
// people; pipes get plain text).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// colorsFor reports whether output written to w may be coloured: only on a
// terminal, and never when NO_COLOR is set (https://no-color.org).
func colorsFor(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	return isTerminal(w)
}

// paint returns s in the given colour attributes when on, else s unchanged.
func paint(on bool, s string, attrs ...color.Attribute) string {
	if !on {
		return s
	}
	c := color.New(attrs...)
	c.EnableColor() // the decision was made by colorsFor, for this writer
	return c.Sprint(s)
}
