package commands

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/mkinstance"
)

// mkzeoinstanceUsage is the reference tool's usage text, printed as it
// prints it (stdout, then exit 1 or 2). zodbctl's own options are listed by
// `zodbctl help mkzeoinstance`.
const mkzeoinstanceUsage = `mkzeoinstance -- create a ZEO instance.
Usage: mkzeoinstance home [[host:]port] [options]

Given an "instance home directory" <home> and some configuration
options (all of which have default values), create the following:

<home>/etc/zeo.conf     -- ZEO config file
<home>/var/             -- Directory for data files: Data.fs etc.
<home>/log/             -- Directory for log files: zeo.log and zeoctl.log
<home>/bin/runzeo       -- the zeo server runner
<home>/bin/zeoctl       -- start/stop script (a shim for zeoctl.py)

Options:
    -h, --help         -- Display this help and exit
    -b, --blobs        -- Directory for Blobs. By default, it will create
                          a blobs directory at <home>/var/blobs unless a
                          path is provided -b path/to/blobs

The script will not overwrite existing files; instead, it will issue a
warning if an existing file is found that differs from the file that
would be written if it didn't exist.

`

func init() {
	register(&cli.Command{
		Name:      "mkzeoinstance",
		Usage:     "create a ZEO instance folder (etc/zeo.conf, bin/runzeo, bin/zeoctl, var/, log/)",
		ArgsUsage: "HOME [[HOST:]PORT] [-b [BLOBDIR]] [--storage NAME=PATH …] [--force] [--systemd]",
		Description: `Same folders, files, modes, messages and exit statuses as zope.mkzeoinstance.
Differences: bin/runzeo and bin/zeoctl exec this zodbctl binary ("serve -C" and
"zeoctl -C") instead of Python; the <runner> keys python and zdrun are comments.
Extensions:
  --storage NAME=PATH  one <filestorage NAME> per database instead of <filestorage 1>
                       (repeatable; a relative PATH is under $INSTANCE/var; with -b
                       and several storages each gets blob-dir BLOBDIR/NAME)
  --force              overwrite existing files that differ
  --systemd            also write etc/zeo.service (a systemd unit running bin/runzeo)`,
		SkipFlagParsing: true,
		Action:          mkzeoinstanceAction,
	})
}

// mkzeoinstanceArgs parses the command line as the reference's argparse
// does: options anywhere, -b with an optional value, unique prefixes of
// long options. usage > 0 means: print the usage text, exit with it.
func mkzeoinstanceArgs(args []string) (o mkinstance.InstanceOptions, usage int, err error) {
	var positional []string
	help := false
	long := []string{"--help", "--blobs", "--storage", "--force", "--systemd"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := a, "", false
		if strings.HasPrefix(a, "--") {
			name, value, hasValue = strings.Cut(a, "=")
			var match []string
			for _, l := range long {
				if l == name {
					match = []string{l}
					break
				}
				if strings.HasPrefix(l, name) {
					match = append(match, l)
				}
			}
			if len(match) != 1 {
				return o, 1, nil
			}
			name = match[0]
		} else if len(a) > 2 {
			name, value, hasValue = a[:2], a[2:], true
		}
		next := func() (string, bool) {
			if hasValue {
				return value, true
			}
			if i+1 < len(args) && (args[i+1] == "" || args[i+1][0] != '-') {
				i++
				return args[i], true
			}
			return "", false
		}
		switch name {
		case "-h", "--help":
			if hasValue {
				return o, 1, nil
			}
			help = true
		case "-b", "--blobs":
			// As argparse's nargs='?': a bare -b means the default; an
			// explicitly empty value (--blobs=) means no blobs.
			if v, ok := next(); ok {
				o.BlobDir = v
			} else {
				o.BlobDir = mkinstance.DefaultBlobDir
			}
		case "--storage":
			v, ok := next()
			if !ok {
				return o, 0, fmt.Errorf("--storage needs NAME=PATH")
			}
			spec, err := mkinstance.ParseStorageSpec(v)
			if err != nil {
				return o, 0, err
			}
			o.Storages = append(o.Storages, spec)
		case "--force", "--systemd":
			if hasValue {
				return o, 1, nil
			}
			if name == "--force" {
				o.Force = true
			} else {
				o.Systemd = true
			}
		default:
			return o, 1, nil
		}
	}
	switch {
	case len(positional) > 2:
		return o, 1, nil
	case help:
		return o, 2, nil
	case len(positional) == 0:
		return o, 1, nil
	}
	o.Home = positional[0]
	o.Address = mkinstance.DefaultAddress
	if len(positional) == 2 {
		if o.Address, err = mkinstance.NormalizeAddress(positional[1]); err != nil {
			if errors.Is(err, mkinstance.ErrBadAddress) {
				return o, 1, nil // Python answers with its usage text
			}
			return o, 0, err
		}
	}
	return o, 0, nil
}

func mkzeoinstanceAction(c *cli.Context) error {
	out := c.App.Writer
	o, usage, err := mkzeoinstanceArgs(c.Args().Slice())
	if err != nil {
		return exitWith(ExitFailure, "zodbctl: mkzeoinstance: %v", err)
	}
	if usage != 0 {
		fmt.Fprint(out, mkzeoinstanceUsage)
		return exitWith(usage, "")
	}
	if o.Executable, err = os.Executable(); err != nil {
		return exitWith(ExitFailure, "zodbctl: mkzeoinstance: cannot find the zodbctl binary: %v", err)
	}
	o.Report = func(line string) { fmt.Fprintln(out, line) }
	if err := mkinstance.Create(o); err != nil {
		return exitWith(ExitFailure, "zodbctl: mkzeoinstance: %v", err)
	}
	fmt.Fprintln(out, "All done.")
	return nil
}
