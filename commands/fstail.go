package commands

import (
	"bufio"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

func init() {
	register(&cli.Command{
		Name:      "fstail",
		Usage:     "show the last transactions of a Data.fs, newest first (fstail.py)",
		ArgsUsage: "FILE",
		Description: `Walks backwards from the end of the file with the redundant transaction
lengths and prints, for each of the last N transactions (default 10), its
time, the SHA-1 of its data records, user, description, length and offset,
exactly as ZODB's fstail does.  Like fstail it checks neither the magic nor
statuses, so a transaction still being committed is listed too.

Differences from fstail.py, where it crashes: an empty or header-only file
prints nothing and exits 0; a damaged file (a length that leads outside the
file or to a header longer than its transaction) stops with a one-line error
naming the position, exit 1, after the transactions already printed.

--json writes JSON Lines, one object per transaction: tid, time (RFC 3339),
pos, size (tlen), status, user, description (user_base64/description_base64
when not UTF-8), extension (the decoded dict), data_pos, hash (SHA-1 hex
of the data records), records: [{oid, pos, size, serial, prev,
back_pointer}] (headers only; classes are not resolved).

Example:
  zodbctl fstail -n 3 Data.fs
  zodbctl fstail --json Data.fs | jq -r .description`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "n", Value: 10, Usage: "number of transactions to show"},
			&cli.BoolFlag{Name: "json", Usage: "JSON Lines output"},
		},
		Action: runFstail,
	})
}

func runFstail(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("fstail: expected one FILE argument")
	}
	path := c.Args().First()
	n := c.Int("n")
	f, err := os.Open(path)
	if err != nil {
		return exitWith(ExitFailure, "zodbctl fstail: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return exitWith(ExitFailure, "zodbctl fstail: %v", err)
	}
	if st.IsDir() {
		return exitWith(ExitFailure, "zodbctl fstail: %s: is a directory", path)
	}
	size := st.Size()
	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	defer out.Flush()
	var jl *jsonLines
	if c.Bool("json") {
		jl = newJSONLines(c.App.Writer)
	}
	fail := func(pos int64, format string, a ...any) error {
		out.Flush()
		return exitWith(ExitFailure, "zodbctl fstail: %s: transaction at %d: %s", path, pos, fmt.Sprintf(format, a...))
	}
	if size <= fsformat.FileHeaderLen {
		return nil // empty storage: nothing to show (fstail.py crashes here)
	}
	var b8 [8]byte
	readU64 := func(pos int64) (uint64, bool) {
		if pos < 0 || pos+8 > size {
			return 0, false
		}
		if _, err := f.ReadAt(b8[:], pos); err != nil {
			return 0, false
		}
		return binary.BigEndian.Uint64(b8[:]), true
	}
	tl, ok := readU64(size - 8)
	if !ok {
		return fail(size-8, "cannot read the redundant length at the end of the file")
	}
	trailer := size - 8 // where the length leading to tpos was read
	tpos := size - 8 - int64(tl)
	if tl > uint64(size) {
		tpos = -1
	}
	var line []byte
	var hb [fsformat.TxnHeaderLen]byte
	var meta []byte
	h := sha1.New()
	var sum [sha1.Size]byte
	for i := 0; i < n; i++ {
		// Like fstail.py, any readable position is shown, even one inside the
		// file header; only positions before the file fail.
		if tpos < 0 {
			out.Flush()
			return exitWith(ExitFailure, "zodbctl fstail: %s: redundant transaction length at %d leads before the start of the file", path, trailer)
		}
		if m, _ := f.ReadAt(hb[:], tpos); m < fsformat.TxnHeaderLen {
			return fail(tpos, "transaction header cut short (%d bytes)", m)
		}
		th := fsformat.ParseTxnHeader(hb[:])
		hl := th.HeaderLen()
		if th.Len < 0 || th.Len < hl {
			return fail(tpos, "header length %d exceeds transaction length %d", hl, binary.BigEndian.Uint64(hb[8:16]))
		}
		h.Reset()
		if _, err := io.Copy(h, io.NewSectionReader(f, tpos+hl, th.Len-hl)); err != nil {
			return fail(tpos, "%v", err)
		}
		digest := h.Sum(sum[:0])
		metaLen := int(hl - fsformat.TxnHeaderLen)
		if cap(meta) < metaLen {
			meta = make([]byte, metaLen)
		}
		meta = meta[:metaLen]
		m, _ := f.ReadAt(meta, tpos+fsformat.TxnHeaderLen)
		meta = meta[:m]
		user := cutMeta(meta, 0, int(th.UserLen))
		desc := cutMeta(meta, int(th.UserLen), int(th.DescLen))
		ext := cutMeta(meta, int(th.UserLen)+int(th.DescLen), int(th.ExtLen))
		if jl != nil {
			tj := newTxnJSON(&th, tpos, user, desc, ext, nil)
			tj.Hash = hex.EncodeToString(digest)
			tj.Records = tailRecords(f, size, tpos, &th)
			if err := jl.Write(tj); err != nil {
				return exitWith(ExitFailure, "zodbctl fstail: %v", err)
			}
		} else {
			line = th.Tid.Time().Append(line[:0])
			line = append(line, ": hash="...)
			line = hex.AppendEncode(line, digest)
			line = append(line, "\nuser="...)
			line = appendPyField(line, user, th.UserLen)
			line = append(line, " description="...)
			line = appendPyField(line, desc, th.DescLen)
			line = append(line, " length="...)
			line = strconv.AppendInt(line, th.Len, 10)
			line = append(line, " offset="...)
			line = strconv.AppendInt(line, tpos, 10)
			line = append(line, " (+"...)
			line = strconv.AppendInt(line, hl, 10)
			line = append(line, ")\n\n"...)
			out.Write(line)
		}
		if tpos == fsformat.FileHeaderLen {
			break
		}
		if tpos < 8 {
			return fail(tpos, "no redundant transaction length before it (the walk went wrong)")
		}
		prev, ok := readU64(tpos - 8)
		if !ok {
			return fail(tpos, "cannot read the previous transaction's redundant length")
		}
		trailer = tpos - 8
		if prev > uint64(tpos) {
			tpos = -1
		} else {
			tpos = tpos - 8 - int64(prev)
		}
	}
	return nil
}

// appendPyField renders fstail's user/description: ” when the declared
// length is 0 (a str), else the bytes repr.
func appendPyField(dst, b []byte, declared uint16) []byte {
	if declared == 0 {
		return append(dst, "''"...)
	}
	return pyrepr.AppendBytes(dst, b)
}

func cutMeta(meta []byte, off, n int) []byte {
	if off > len(meta) {
		return nil
	}
	if off+n > len(meta) {
		return meta[off:]
	}
	return meta[off : off+n]
}

// tailRecords reads the data record headers of a transaction for --json,
// stopping quietly at the first inconsistent one.
func tailRecords(f *os.File, size, tpos int64, th *fsformat.TxnHeader) []recordJSON {
	recs := []recordJSON{}
	tend := tpos + th.Len
	var b [fsformat.DataHeaderLen + 8]byte
	for pos := tpos + th.HeaderLen(); pos+fsformat.DataHeaderLen <= tend; {
		if m, _ := f.ReadAt(b[:], pos); m < fsformat.DataHeaderLen {
			break
		}
		dh := fsformat.ParseDataHeader(b[:])
		rl := dh.RecordLen()
		if rl < 0 || pos+rl > tend || dh.TxnPos != tpos || dh.VersionLen != 0 {
			break
		}
		r := recordJSON{Oid: jsonOid(dh.Oid), Pos: pos, Size: dh.DataLen, Serial: jsonTid(dh.Tid), Prev: dh.Prev}
		if dh.DataLen == 0 {
			back := int64(binary.BigEndian.Uint64(b[fsformat.DataHeaderLen:]))
			r.BackPointer = &back
			r.Deleted = back == 0
		}
		recs = append(recs, r)
		pos += rl
	}
	return recs
}
