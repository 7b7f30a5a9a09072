package commands

import (
	"bufio"
	"errors"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
)

func init() {
	register(&cli.Command{
		Name:      "verify",
		Aliases:   []string{"fstest"},
		Usage:     "check the structure of a Data.fs (fstest.py)",
		ArgsUsage: "FILE",
		Description: `Reads the file sequentially and checks every transaction header (tid order,
status, lengths, redundant length) and every data record header (transaction
pointer, extent), exactly as ZODB's fstest does.  Prev pointers, backpointers
and pickles are not checked.

--deep adds what fstest leaves out: every non-zero prev pointer must be the
oid's previous record and every backpointer must lead back to an earlier
record of the same oid (e.g. "Data.fs invalid back pointer at 36990: 1845 is
not an earlier record of oid 0x0000000000000001").  It keeps an oid map in
memory.

On the first problem it prints fstest's message on stderr (e.g.
"Data.fs truncated possibly because of damaged records at 43777") and exits
1; a sound file exits 0.  -v prints a line per transaction and, at the end,
"no errors detected" (without a newline, as fstest); -vv adds a line per
data record.

--json writes JSON Lines, one object per checked transaction: tid, time
(RFC 3339), pos, size (tlen), status, user, description (as in fsdump),
extension (decoded), data_pos, records: [{oid, pos, size (plen), serial,
prev}]; then a final {"ok": true} or {"ok": false, "error":
"<fstest message>", "pos": N}.

Example:
  zodbctl verify Data.fs && echo sound
  zodbctl fstest -v Data.fs`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "v", Usage: "verbose: a line per transaction (twice: also per record)"},
			&cli.BoolFlag{Name: "vv", Usage: "very verbose: also a line per data record"},
			&cli.BoolFlag{Name: "json", Usage: "JSON Lines output"},
			&cli.BoolFlag{Name: "deep", Usage: "also check prev pointers and backpointers (not done by fstest)"},
		},
		Action: runVerify,
	})
}

// verifyLevel is fstest's verbosity: the number of -v flags (-vv counts 2).
func verifyLevel(c *cli.Context, vcount int) int {
	level := vcount
	if c.Bool("vv") && level < 2 {
		level = 2
	}
	return level
}

func runVerify(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("verify: expected one FILE argument")
	}
	path := c.Args().First()
	level := verifyLevel(c, verifyCount(c))
	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	defer out.Flush()
	var line []byte
	opt := fsformat.VerifyOptions{Deep: c.Bool("deep")}
	var jl *jsonLines
	var recs []recordJSON
	if c.Bool("json") {
		jl = newJSONLines(c.App.Writer)
		// user, description and extension are read aside (Verify skips them).
		metaFile, err := os.Open(path)
		if err == nil {
			defer metaFile.Close()
		}
		var meta []byte
		opt.Record = func(pos int64, h *fsformat.DataHeader, i int) {
			recs = append(recs, recordJSON{Oid: jsonOid(h.Oid), Pos: pos, Size: h.DataLen, Serial: jsonTid(h.Tid), Prev: h.Prev})
		}
		opt.Transaction = func(pos int64, h *fsformat.TxnHeader, i int) {
			var u, d, e []byte
			if metaFile != nil {
				n := int(h.HeaderLen() - fsformat.TxnHeaderLen)
				if cap(meta) < n {
					meta = make([]byte, n)
				}
				meta = meta[:n]
				if m, _ := metaFile.ReadAt(meta, pos+fsformat.TxnHeaderLen); m == n {
					u, d, e = meta[:h.UserLen], meta[h.UserLen:int(h.UserLen)+int(h.DescLen)], meta[int(h.UserLen)+int(h.DescLen):]
				}
			}
			tj := newTxnJSON(h, pos, u, d, e, nil)
			tj.Records = recs
			if tj.Records == nil {
				tj.Records = []recordJSON{}
			}
			jl.Write(tj)
			recs = recs[:0]
		}
	} else {
		if level >= 2 {
			opt.Record = func(pos int64, h *fsformat.DataHeader, i int) {
				line = fsformat.AppendVerifyRecordLine(line[:0], pos, h.Oid, i)
				out.Write(line)
			}
		}
		if level >= 1 {
			opt.Transaction = func(pos int64, h *fsformat.TxnHeader, i int) {
				line = fsformat.AppendVerifyTxnLine(line[:0], pos, h.Tid, i)
				out.Write(line)
			}
		}
	}
	err := fsformat.Verify(path, opt)
	var ve *fsformat.VerifyError
	switch {
	case err == nil:
		if jl != nil {
			jl.Write(map[string]any{"ok": true})
		} else if level >= 1 {
			out.WriteString("no errors detected")
		}
		return nil
	case errors.As(err, &ve):
		if jl != nil {
			jl.Write(map[string]any{"ok": false, "error": ve.Msg, "pos": ve.Offset})
		}
		out.Flush()
		return exitWith(ExitFailure, "%s", ve.Msg)
	default:
		out.Flush()
		return exitWith(ExitFailure, "zodbctl verify: %v", err)
	}
}

// verifyCount reads how many times -v was given.
func verifyCount(c *cli.Context) int { return c.Count("v") }
