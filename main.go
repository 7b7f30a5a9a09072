// Command zodbctl administers ZODB databases (FileStorage Data.fs files) and
// ZEO servers: one binary in place of the Python scripts (fsdump, fstest,
// fsrefs, zeopack, mkzeoinstance, runzeo …).
package main

import (
	"os"

	"github.com/zodbctl/zodbctl/commands"
)

func main() {
	os.Exit(commands.Run(os.Args, os.Stdout, os.Stderr))
}
