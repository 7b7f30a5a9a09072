package commands

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
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

--index checks the saved index FILE.index (as written by FileStorage or
zodbctl reindex) against a scan of FILE instead, and prints one line per
difference on stdout, oids as 0x and 16 hex digits:

  FILE.index: oid 0x… at P in the file is missing from the index
  FILE.index: oid 0x… at P in the index is not in the file
  FILE.index: oid 0x… at P in the index, at Q in the file
  FILE.index: stale: covers data up to P of E; lacks N transactions, tid T1 at P1 to tid T2 at P2
  FILE.index: saved position P is past the end of the data at E (…)
  FILE.index: saved position P is not the end of a transaction
  FILE.index: unreadable index: <reason>

then a summary line ("FILE.index: consistent with FILE (N objects, data up
to P)" or "FILE.index: K differences from FILE (…); FileStorage would use
it" — or "would ignore it and rescan": FileStorage's open checks only the
saved position and the last transaction's records, so an index wrong about
older oids is used as is). A stale index (the file grew after it was saved;
FileStorage uses it and scans the rest) is one difference, and the oids are
checked against the part of the file it covers.
Exit 0 when consistent, 1 on any difference or when FILE cannot be scanned.
With --json, one object per difference: {"kind", …} where kind is
"missing", "extra" or "position" (with "oid", "index_pos", "file_pos"; null
on the side that lacks the oid), "stale" ("index_pos", "data_end",
"transactions", "first_tid", "first_pos", "last_tid", "last_pos"),
"past_end" or "not_boundary" ("index_pos", "data_end"), "unreadable"
("error"); then {"ok", "index", "differences", "objects", "index_pos",
"data_end", "filestorage_uses"} (the last four absent when the index is
unreadable).

Example:
  zodbctl verify Data.fs && echo sound
  zodbctl fstest -v Data.fs
  zodbctl verify --index Data.fs`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "v", Usage: "verbose: a line per transaction (twice: also per record)"},
			&cli.BoolFlag{Name: "vv", Usage: "very verbose: also a line per data record"},
			&cli.BoolFlag{Name: "json", Usage: "JSON Lines output"},
			&cli.BoolFlag{Name: "deep", Usage: "also check prev pointers and backpointers (not done by fstest)"},
			&cli.BoolFlag{Name: "index", Usage: "check FILE.index against FILE instead (every oid's position)"},
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
	if c.Bool("index") {
		if c.Bool("deep") || c.Bool("vv") || verifyCount(c) > 0 {
			return usageError("verify: --index cannot be combined with -v or --deep")
		}
		return runVerifyIndex(c, path)
	}
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

// indexCheck is what verify --index found; the JSON Lines records are
// documented in the command's description.
type indexCheck struct {
	path, index string
	text        *bufio.Writer
	jl          *jsonLines
	differences int
	// used: FileStorage's open would take this index (its sanity check
	// passes), so a difference in an oid it does not check is served as is.
	used bool
}

// report counts one difference and prints it as a text line or a JSON object.
func (ic *indexCheck) report(line string, obj map[string]any) {
	ic.differences++
	if ic.jl != nil {
		ic.jl.Write(obj)
		return
	}
	ic.text.WriteString(ic.index)
	ic.text.WriteString(": ")
	ic.text.WriteString(line)
	ic.text.WriteByte('\n')
}

// runVerifyIndex is verify --index: FILE.index against a scan of FILE.
func runVerifyIndex(c *cli.Context, path string) error {
	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	defer out.Flush()
	ic := &indexCheck{path: path, index: path + ".index", text: out}
	if c.Bool("json") {
		ic.jl = newJSONLines(c.App.Writer)
	}
	fail := func(err error) error {
		out.Flush()
		return exitWith(ExitFailure, "zodbctl verify: %v", err)
	}

	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	saved, savedPos, err := fsindex.Read(ic.index)
	if err != nil {
		ic.report("unreadable index: "+strings.TrimPrefix(err.Error(), ic.index+": "),
			map[string]any{"kind": "unreadable", "error": err.Error()})
		ic.summary(nil, 0, -1)
		return ic.exit(out)
	}

	// The whole file as FileStorage's open scan sees it. Its warnings are
	// verify's business without --index, not this check's.
	full := &scanIndex{Index: fsindex.New()}
	res, err := fsformat.ScanIndex(f, path, full, func(string) {})
	if err != nil {
		return fail(err)
	}
	end := res.End
	pos := int64(savedPos)
	ref := full
	switch {
	case savedPos > uint64(st.Size()) || pos > end:
		ic.report(fmt.Sprintf("saved position %d is past the end of the data at %d (index of a longer or other file?)", savedPos, end),
			map[string]any{"kind": "past_end", "index_pos": savedPos, "data_end": end})
	case pos < end:
		// A stale index: FileStorage uses it and scans the rest. Check
		// the prefix it claims to cover, and name the transactions it lacks.
		prefix := &scanIndex{Index: fsindex.New()}
		pres, perr := fsformat.ScanIndexReader(f, pos, path, prefix, func(string) {})
		if perr != nil || pres.End != pos {
			ic.report(fmt.Sprintf("saved position %d is not the end of a transaction", savedPos),
				map[string]any{"kind": "not_boundary", "index_pos": savedPos, "data_end": end})
			break
		}
		ref = prefix
		if err := ic.reportUncovered(f, st.Size(), pos, end); err != nil {
			return fail(err)
		}
	}

	fsindex.Compare(saved, ref.Index, func(d fsindex.Difference) bool {
		oid := fsformat.Oid(d.Oid)
		switch {
		case !d.Ref:
			ic.report(fmt.Sprintf("oid %s at %d in the index is not in the file", oidHex(oid), d.Pos),
				map[string]any{"kind": "extra", "oid": jsonOid(oid), "index_pos": d.Pos, "file_pos": nil})
		case !d.Has:
			ic.report(fmt.Sprintf("oid %s at %d in the file is missing from the index", oidHex(oid), d.Want),
				map[string]any{"kind": "missing", "oid": jsonOid(oid), "index_pos": nil, "file_pos": d.Want})
		default:
			ic.report(fmt.Sprintf("oid %s at %d in the index, at %d in the file", oidHex(oid), d.Pos, d.Want),
				map[string]any{"kind": "position", "oid": jsonOid(oid), "index_pos": d.Pos, "file_pos": d.Want})
		}
		return true
	})
	ic.used = fileStorageWouldUse(f, st.Size(), path, saved, savedPos)
	ic.summary(saved, savedPos, end)
	return ic.exit(out)
}

// reportUncovered names the transactions between the saved position and the
// end of the data: one line for all of them (first and last), since a stale
// index may lack any number.
func (ic *indexCheck) reportUncovered(f *os.File, size, from, end int64) error {
	file, err := fsformat.NewFile(f, size, ic.path)
	if err != nil {
		return err
	}
	var (
		n                 int
		first, last       fsformat.Tid
		firstPos, lastPos int64
	)
	for txn, err := range file.Transactions(fsformat.IterOptions{Start: from}) {
		if err != nil {
			return err
		}
		if txn.Pos >= end {
			break
		}
		if n == 0 {
			first, firstPos = txn.Tid, txn.Pos
		}
		last, lastPos = txn.Tid, txn.Pos
		n++
	}
	what := fmt.Sprintf("%d transactions", n)
	if n == 1 {
		what = "1 transaction"
	}
	line := fmt.Sprintf("stale: covers data up to %d of %d; lacks %s (bytes %d-%d)", from, end, what, from, end)
	if n > 0 {
		line = fmt.Sprintf("stale: covers data up to %d of %d; lacks %s, tid %s at %d to tid %s at %d",
			from, end, what, first, firstPos, last, lastPos)
	}
	obj := map[string]any{"kind": "stale", "index_pos": from, "data_end": end, "transactions": n}
	if n > 0 {
		obj["first_tid"], obj["first_pos"] = jsonTid(first), firstPos
		obj["last_tid"], obj["last_pos"] = jsonTid(last), lastPos
	}
	ic.report(line, obj)
	return nil
}

// summary prints the closing line or object. end < 0: the index was unreadable.
func (ic *indexCheck) summary(saved *fsindex.Index, savedPos uint64, end int64) {
	objects := 0
	if saved != nil {
		objects = saved.Len()
	}
	if ic.jl != nil {
		obj := map[string]any{"ok": ic.differences == 0, "index": ic.index, "differences": ic.differences}
		if end >= 0 {
			obj["objects"], obj["index_pos"], obj["data_end"] = objects, savedPos, end
			obj["filestorage_uses"] = ic.used
		}
		ic.jl.Write(obj)
		return
	}
	switch {
	case end < 0:
		fmt.Fprintf(ic.text, "%s: unusable (FileStorage would rebuild it by scanning %s)\n", ic.index, ic.path)
	case ic.differences == 0:
		fmt.Fprintf(ic.text, "%s: consistent with %s (%d objects, data up to %d)\n", ic.index, ic.path, objects, savedPos)
	default:
		s := "s"
		if ic.differences == 1 {
			s = ""
		}
		verdict := "FileStorage would ignore it and rescan"
		if ic.used {
			verdict = "FileStorage would use it"
		}
		fmt.Fprintf(ic.text, "%s: %d difference%s from %s (%d objects, index up to %d, data up to %d); %s\n",
			ic.index, ic.differences, s, ic.path, objects, savedPos, end, verdict)
	}
}

func (ic *indexCheck) exit(out *bufio.Writer) error {
	out.Flush()
	if ic.differences > 0 {
		return exitWith(ExitFailure, "")
	}
	return nil
}

// oidHex is an oid as 0x and 16 hex digits, as verify --deep writes it.
func oidHex(o fsformat.Oid) string { return fmt.Sprintf("0x%016x", uint64(o)) }

// fileStorageWouldUse is FileStorage's _check_sanity (spec fsindex.md §5):
// the saved position lies within the file, at least 100, and walking back
// from it to the newest transaction that is neither undone nor empty, the
// headers are sound and up to five of its records are where the index says.
// Only those records are checked, which is why an index can pass it and
// still be wrong about older oids.
func fileStorageWouldUse(f *os.File, size int64, name string, x *fsindex.Index, savedPos uint64) bool {
	if savedPos < 100 || savedPos > uint64(size) {
		return false
	}
	file, err := fsformat.NewFile(f, size, name)
	if err != nil {
		return false
	}
	const maxChecked = 5
	pos := int64(savedPos)
	var b [8]byte
	for {
		if _, err := f.ReadAt(b[:], pos-8); err != nil {
			return false
		}
		tl := int64(binary.BigEndian.Uint64(b[:]))
		if tl < 0 || tl > pos {
			return false
		}
		pos -= tl + 8
		if pos < 4 {
			return false
		}
		h, err := file.ReadTxnHeaderAt(pos)
		if err != nil || h.Len != tl {
			return false
		}
		if h.Status == fsformat.StatusUndone {
			continue
		}
		if h.Status != fsformat.StatusNormal && h.Status != fsformat.StatusPacked || tl < h.HeaderLen() {
			return false
		}
		end, rpos := pos+tl, pos+h.HeaderLen()
		if rpos == end {
			continue // empty: look at the one before
		}
		for checked := 0; rpos < end && checked < maxChecked; checked++ {
			dh, err := file.ReadDataHeaderAt(rpos)
			if err != nil {
				return false
			}
			rl := dh.RecordLen()
			if rl <= 0 || rpos+rl > end || dh.TxnPos != pos {
				return false
			}
			if p, ok := x.Get(uint64(dh.Oid)); !ok || int64(p) != rpos {
				return false
			}
			rpos += rl
		}
		return true
	}
}
