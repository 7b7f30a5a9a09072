package commands

import (
	"bufio"
	"errors"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

func init() {
	register(&cli.Command{
		Name:      "fsdump",
		Usage:     "list every transaction and data record of a Data.fs (fsdump.py)",
		ArgsUsage: "FILE",
		Description: `Prints what ZODB's fsdump prints, byte for byte: one "Trans" line and a
status line per transaction, one "data" line per record with its size, class
and, for undo-style records, the tid the backpointer refers to.  Warnings
about damage (time-stamp reduction, invalid status, truncation, …) go to
stderr as fsdump prints them; like fsdump, a damaged tail ends the listing.

--verbose prints the raw walk of fsdump's Dumper (every header field, no
backpointer resolution).  Where the Python tools crash (empty or non-FS30
file, bad backpointer, trailing junk) zodbctl prints a one-line error and
exits 1; FS21 (Python 2) files are dumped like FS30 ones.

--json (which ignores --verbose) writes JSON Lines, one object per
transaction:
  tid, time (RFC 3339), pos, size (tlen), status, user, description
  (user_base64/description_base64 when not UTF-8), extension (the decoded
  dict, omitted when empty; extension_base64 if it is not a dict), data_pos, records: [{oid, pos, class, size,
  serial, prev, back_pointer (backpointer records), back_tid, deleted (no
  data: undone creation or deleteObject)}].

Example:
  zodbctl fsdump Data.fs | less
  zodbctl fsdump --json Data.fs | jq -r '.records[].class' | sort | uniq -c`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "raw header dump (fsdump's Dumper)"},
			&cli.BoolFlag{Name: "json", Usage: "JSON Lines output"},
		},
		Action: runFsdump,
	})
}

func runFsdump(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("fsdump: expected one FILE argument")
	}
	path := c.Args().First()
	out := bufio.NewWriterSize(c.App.Writer, 256<<10)
	defer out.Flush()
	if c.Bool("verbose") && !c.Bool("json") {
		return dumpVerbose(path, out)
	}
	f, err := fsformat.Open(path)
	if err != nil {
		return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
	}
	defer f.Close()
	warn := func(msg string) {
		out.Flush()
		c.App.ErrWriter.Write([]byte(msg + "\n"))
	}
	var jl *jsonLines
	if c.Bool("json") {
		jl = newJSONLines(c.App.Writer)
	}
	var line []byte
	var recs []recordJSON
	i := 0
	for txn, err := range f.Transactions(fsformat.IterOptions{Warn: warn, DataLimit: fsdumpPrefix}) {
		if err != nil {
			out.Flush()
			return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
		}
		if jl == nil {
			line = append(line[:0], "Trans #"...)
			line = appendZeroPad(line, i, 5)
			line = append(line, " tid="...)
			line = fsformat.AppendHex16(line, uint64(txn.Tid))
			line = append(line, " size="...)
			line = strconv.AppendInt(line, txn.Len, 10)
			line = append(line, " time="...)
			line = txn.Tid.Time().Append(line)
			line = append(line, " offset="...)
			line = strconv.AppendInt(line, txn.DataPos(), 10)
			line = append(line, "\n    status="...)
			line = pyrepr.AppendStr(line, []byte{txn.Status})
			line = append(line, " user="...)
			line = pyrepr.AppendBytes(line, txn.User)
			line = append(line, " description="...)
			line = pyrepr.AppendBytes(line, txn.Description)
			line = append(line, '\n')
			out.Write(line)
		}
		recs = recs[:0]
		j := 0
		for rec, err := range txn.Records() {
			if err != nil {
				out.Flush()
				return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
			}
			// Only the start of each pickle is read (fsdumpPrefix): the class
			// comes from there, the size from the header.
			data, size, dataPos, hasData := rec.Data, rec.DataLen, rec.Pos, rec.DataLen > 0
			var bpTid fsformat.Tid
			hasBp := false
			if rec.DataLen == 0 && rec.Back != 0 {
				d, n, _, p, err := f.LoadBackPrefix(rec.Oid, rec.Back, fsdumpPrefix)
				if err != nil && !errors.Is(err, fsformat.ErrNoData) {
					out.Flush()
					return exitWith(ExitFailure, "zodbctl fsdump: %v (backpointer of data record at %d)", err, rec.Pos)
				}
				data, size, dataPos, hasData = d, n, p, err == nil
				bh, err := f.ReadDataHeaderAt(rec.Back)
				if err != nil {
					out.Flush()
					return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
				}
				bpTid, hasBp = bh.Tid, true
			}
			var module, class []byte
			if hasData {
				module, class = fsformat.ClassName(data)
				if len(module) == 0 && len(class) == 0 && int64(len(data)) < size {
					// an unusual first pickle longer than the prefix
					if full, _, err := f.LoadRecord(dataPos); err == nil {
						module, class = fsformat.ClassName(full)
					}
				}
			}
			if jl != nil {
				r := recordJSON{Oid: jsonOid(rec.Oid), Pos: rec.Pos, Serial: jsonTid(rec.Tid), Prev: rec.Prev}
				if hasData {
					r.Size = size
					r.Class = string(module) + "." + string(class)
				} else {
					r.Deleted = true
				}
				if rec.DataLen == 0 {
					b := rec.Back
					r.BackPointer = &b
				}
				if hasBp {
					r.BackTid = jsonTid(bpTid)
				}
				recs = append(recs, r)
				j++
				continue
			}
			line = append(line[:0], "  data #"...)
			line = appendZeroPad(line, j, 5)
			line = append(line, " oid="...)
			line = fsformat.AppendHex16(line, uint64(rec.Oid))
			if !hasData {
				line = append(line, " class=undo or abort of object creation"...)
			} else {
				line = append(line, " size="...)
				line = strconv.AppendInt(line, size, 10)
				line = append(line, " class="...)
				line = append(line, module...)
				line = append(line, '.')
				line = append(line, class...)
			}
			if hasBp {
				line = append(line, " bp="...)
				line = fsformat.AppendHex16(line, uint64(bpTid))
			}
			line = append(line, '\n')
			out.Write(line)
			j++
		}
		if jl != nil {
			tj := newTxnJSON(&txn.TxnHeader, txn.Pos, txn.User, txn.Description, txn.Extension, recs)
			tj.Records = recs
			if tj.Records == nil {
				tj.Records = []recordJSON{}
			}
			if err := jl.Write(tj); err != nil {
				return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
			}
		}
		i++
	}
	if err := out.Flush(); err != nil {
		return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
	}
	return nil
}

// fsdumpPrefix is how much of each pickle fsdump reads: enough for the class
// description of any realistic record, and a bound on memory.
const fsdumpPrefix = 4096

func appendZeroPad(dst []byte, v, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// dumpVerbose renders fsdump's Dumper.
func dumpVerbose(path string, out *bufio.Writer) error {
	osf, err := os.Open(path)
	if err != nil {
		return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
	}
	defer osf.Close()
	st, err := osf.Stat()
	if err != nil {
		return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
	}
	if st.IsDir() {
		return exitWith(ExitFailure, "zodbctl fsdump: %s: is a directory", path)
	}
	var line []byte
	const stars = "************************************************************\n"
	const equals = "============================================================\n"
	const dashes = "------------------------------------------------------------\n"
	num := func(label string, v int64) {
		line = append(line, label...)
		line = strconv.AppendInt(line, v, 10)
		line = append(line, '\n')
	}
	hex := func(label string, v uint64) {
		line = append(line, label...)
		line = fsformat.AppendHex16(line, v)
		line = append(line, '\n')
	}
	text := func(label string, b []byte, declared int) {
		line = append(line, label...)
		if declared == 0 {
			line = append(line, "''"...)
		} else {
			line = pyrepr.AppendBytes(line, b)
		}
		line = append(line, '\n')
	}
	err = fsformat.RawScan(osf, st.Size(), path, fsformat.RawVisitor{
		Magic: func(b []byte) {
			line = append(line[:0], stars...)
			line = append(line, "file identifier: "...)
			line = pyrepr.AppendBytes(line, b)
			line = append(line, '\n')
			out.Write(line)
		},
		Txn: func(pos int64, h *fsformat.TxnHeader, u, d, e []byte) {
			line = append(line[:0], equals...)
			num("offset: ", pos)
			num("end pos: ", pos+h.Len)
			hex("transaction id: ", uint64(h.Tid))
			num("trec len: ", h.Len)
			line = append(line, "status: "...)
			line = pyrepr.AppendBytes(line, []byte{h.Status})
			line = append(line, '\n')
			text("user: ", u, int(h.UserLen))
			text("description: ", d, int(h.DescLen))
			num("len(extra): ", int64(h.ExtLen))
			out.Write(line)
		},
		Record: func(pos int64, h *fsformat.DataHeader, back int64) {
			line = append(line[:0], dashes...)
			num("offset: ", pos)
			hex("oid: ", uint64(h.Oid))
			hex("revid: ", uint64(h.Tid))
			num("previous record offset: ", h.Prev)
			num("transaction offset: ", h.TxnPos)
			if h.VersionLen != 0 { // the Dumper's assertion fails here
				out.Write(line)
				return
			}
			num("len(data): ", h.DataLen)
			if h.DataLen == 0 && back >= 0 {
				num("backpointer: ", back)
			}
			out.Write(line)
		},
		TxnEnd: func(rtl uint64) {
			line = append(line[:0], "redundant trec len: "...)
			line = strconv.AppendUint(line, rtl, 10)
			line = append(line, '\n')
			out.Write(line)
		},
	})
	if err != nil {
		out.Flush()
		return exitWith(ExitFailure, "zodbctl fsdump: %v", err)
	}
	return nil
}
