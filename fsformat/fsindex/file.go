package fsindex

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
)

// ErrOldFormat means the file is a pre-2010 index (a pickled dict with
// 'index' and 'pos'); FileStorage converts it, zodbctl treats it as no usable
// index and rebuilds.
var ErrOldFormat = errors.New("old-format index (rebuild it)")

// ErrPosTooLarge means a position does not fit the file format's 6 bytes.
var ErrPosTooLarge = errors.New("position ≥ 2^48 cannot be stored in Data.fs.index")

// Read loads the index file at path: the map and the position up to which
// it is valid.
func Read(path string) (*Index, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	x, pos, err := Load(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return x, pos, nil
}

// Write saves x with pos as Data.fs.index at path, as FileStorage does: the
// whole file is written aside, synced and renamed over path. The caller
// holds the storage's lock; temporary files of killed earlier Writes are
// removed.
func Write(path string, x *Index, pos uint64) error {
	// The temporary file goes next to the index, as FileStorage's
	// Data.fs.index.index_tmp does (not in $TMPDIR).
	removeStaleTemps(path)
	pf, err := renameio.NewPendingFile(path, renameio.WithPermissions(0o666), renameio.WithTempDir(filepath.Dir(path)))
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	w := bufio.NewWriterSize(pf, 1<<20)
	if err := x.Save(w, pos); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// removeStaleTemps deletes the temporary files an earlier Write of path
// left when its process was killed (renameio names them "." + base + a
// decimal number). FileStorage overwrites its one fixed index_tmp name; with
// random names they would pile up. Callers hold the storage's lock
// (Data.fs.lock), so no other Write of the same index is under way.
func removeStaleTemps(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // Write itself reports a directory it cannot use
	}
	prefix := "." + base
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && len(name) > len(prefix) && name[:len(prefix)] == prefix && allDigits(name[len(prefix):]) {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Save writes the index file's bytes to w: exactly what fsIndex.save writes
// for the same map and pos (spec fsindex.md §2). It refuses positions that
// do not fit in 6 bytes.
func (x *Index) Save(w io.Writer, pos uint64) error {
	if pos >= MaxPos || len(x.huge) > 0 {
		return ErrPosTooLarge
	}
	head, err := pickle.MarshalFast(int64(pos), 3)
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	order := x.sortedPages()
	var buf []byte
	var group []*page
	for i := 0; i < len(order); {
		// The pages of one 6-byte prefix are consecutive in order.
		prefix := order[i] >> 8
		j, n := i, 0
		group = group[:0]
		for ; j < len(order) && order[j]>>8 == prefix; j++ {
			p := x.lookup(order[j])
			group = append(group, p)
			n += len(p.keys)
		}
		buf = appendBucketPickle(buf[:0], prefix, order[i:j], group, n)
		if _, err := w.Write(buf); err != nil {
			return err
		}
		i = j
	}
	_, err = w.Write([]byte{0x80, 0x03, 'N', '.'})
	return err
}

// appendBucketPickle appends PROTO 3, SHORT_BINBYTES prefix, the bucket
// bytes (suffixes block then positions block, fsBucket.toString), TUPLE2,
// STOP.
func appendBucketPickle(dst []byte, prefix uint64, keys []uint64, pages []*page, n int) []byte {
	dst = append(dst, 0x80, 0x03, 'C', 6)
	dst = binary.BigEndian.AppendUint64(dst, prefix<<16)[:len(dst)+6]
	size := 8 * n
	if size < 256 {
		dst = append(dst, 'C', byte(size))
	} else {
		dst = append(dst, 'B')
		dst = binary.LittleEndian.AppendUint32(dst, uint32(size))
	}
	for i, k := range keys {
		for _, low := range pages[i].keys {
			dst = append(dst, byte(k), low)
		}
	}
	for _, p := range pages {
		dst = append(dst, p.vals...)
	}
	return append(dst, 0x86, '.')
}

// loader reads the pickles of an index file through a sliding window, so
// memory is the index plus one pickle (a bucket is at most 512 KiB).
type loader struct {
	r      io.Reader
	buf    []byte
	start  int   // first unread byte in buf
	off    int64 // file offset of buf[0]
	eof    bool
	dec    pickle.Decoder
	x      *Index
	last   uint64 // last prefix loaded, for the ascending fast path
	loaded bool
}

// minWindow is the initial read window; it doubles whenever one pickle
// does not fit (a full bucket is 512 KiB).
const minWindow = 32 << 10

// fill reads more input after buf[start:], moving that to the front and
// growing the window when it is full.
func (l *loader) fill() error {
	if l.eof {
		return io.ErrUnexpectedEOF
	}
	if l.start > 0 {
		n := copy(l.buf, l.buf[l.start:])
		l.off += int64(l.start)
		l.buf = l.buf[:n]
		l.start = 0
	}
	if len(l.buf) == cap(l.buf) {
		l.buf = append(make([]byte, 0, max(2*cap(l.buf), minWindow)), l.buf...)
	}
	n, err := io.ReadAtLeast(l.r, l.buf[len(l.buf):cap(l.buf)], 1)
	l.buf = l.buf[:len(l.buf)+n]
	if err == io.EOF {
		l.eof = true
		return nil
	}
	return err
}

// next decodes the next pickle generically, reading more input as needed.
func (l *loader) next(globals bool) (any, error) {
	for {
		l.dec.Reset(l.buf[l.start:])
		if globals {
			l.dec.FindGlobal = pickle.AnyGlobal
		} else {
			l.dec.FindGlobal = nil
		}
		v, err := l.dec.Decode()
		if err == nil {
			l.start += l.dec.Offset()
			return v, nil
		}
		if errors.Is(err, pickle.ErrTruncated) && !l.eof {
			if ferr := l.fill(); ferr != nil {
				return nil, ferr
			}
			continue
		}
		if errors.Is(err, pickle.ErrTruncated) {
			return nil, fmt.Errorf("offset %d: file ends inside a pickle (no None terminator?)", l.off+int64(l.start))
		}
		return nil, fmt.Errorf("offset %d: %w", l.off+int64(l.start), err)
	}
}

// Load reads an index file from r (see Read).
func Load(r io.Reader) (*Index, uint64, error) {
	l := &loader{r: r, x: New()}
	if err := l.fill(); err != nil {
		return nil, 0, err
	}
	v, err := l.next(true)
	if err != nil {
		return nil, 0, err
	}
	var pos uint64
	switch p := v.(type) {
	case int64:
		if p < 0 {
			return nil, 0, fmt.Errorf("offset 0: negative position %d", p)
		}
		pos = uint64(p)
	case bool:
		if p {
			pos = 1
		}
	case *big.Int:
		return nil, 0, fmt.Errorf("offset 0: position %s: %w", p, ErrPosTooLarge)
	default:
		return nil, 0, ErrOldFormat
	}
	for {
		done, err := l.fastBucket()
		if err != nil {
			return nil, 0, err
		}
		if done {
			continue
		}
		at := l.off + int64(l.start)
		v, err := l.next(false)
		if err != nil {
			return nil, 0, err
		}
		if falsy(v) {
			return l.x, pos, nil
		}
		prefix, bucket, err := prefixAndBucket(v)
		if err != nil {
			return nil, 0, fmt.Errorf("offset %d: %w", at, err)
		}
		if err := l.addBucket(prefix, bucket); err != nil {
			return nil, 0, fmt.Errorf("offset %d: %w", at, err)
		}
	}
}

// fastBucket consumes a pickle in the exact form ZODB writes, without the
// general decoder. done is false when the next pickle has another form.
func (l *loader) fastBucket() (done bool, err error) {
	for {
		s := l.buf[l.start:]
		need, ok := matchBucket(s)
		if ok {
			d := need - 2 - bucketLen(s)
			if err := l.addBucket(s[4:10], s[d:need-2]); err != nil {
				return false, fmt.Errorf("offset %d: %w", l.off+int64(l.start), err)
			}
			l.start += need
			return true, nil
		}
		if need == 0 || l.eof {
			return false, nil
		}
		if err := l.fill(); err != nil {
			return false, err
		}
	}
}

// matchBucket checks s for 80 03 43 06 <prefix> (43 n | 42 n32) <n bytes> 86 2e.
// It returns the pickle's length and true on a match, the number of bytes
// needed to decide (> len(s)) and false when s is too short, or 0 and
// false when the form differs.
func matchBucket(s []byte) (int, bool) {
	if len(s) < 12 {
		if len(s) >= 4 && (s[0] != 0x80 || s[1] != 3 || s[2] != 'C' || s[3] != 6) {
			return 0, false
		}
		return 12, false
	}
	if s[0] != 0x80 || s[1] != 3 || s[2] != 'C' || s[3] != 6 {
		return 0, false
	}
	var d, n int
	switch s[10] {
	case 'C':
		d, n = 12, int(s[11])
	case 'B':
		if len(s) < 15 {
			return 15, false
		}
		d, n = 15, int(binary.LittleEndian.Uint32(s[11:15]))
	default:
		return 0, false
	}
	end := d + n + 2
	if end > len(s) {
		return end, false
	}
	if s[end-2] != 0x86 || s[end-1] != '.' {
		return 0, false
	}
	return end, true
}

func bucketLen(s []byte) int {
	if s[10] == 'C' {
		return int(s[11])
	}
	return int(binary.LittleEndian.Uint32(s[11:15]))
}

// falsy is Python truthiness for the terminator: None, empty tuple, etc.
func falsy(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case int64:
		return x == 0
	case float64:
		return x == 0
	case string:
		return x == ""
	case []byte:
		return len(x) == 0
	case pickle.Tuple:
		return len(x) == 0
	case pickle.List:
		return len(x) == 0
	case pickle.Dict:
		return len(x) == 0
	case *pickle.Set:
		return len(x.Items) == 0
	case pickle.ByteArray:
		return len(x) == 0
	}
	return false
}

// prefixAndBucket unpacks (prefix, bucket_bytes) as fsIndex.load does:
// a 2-tuple or 2-list of bytes, or of ASCII str (ensure_bytes).
func prefixAndBucket(v any) ([]byte, []byte, error) {
	var items []any
	switch x := v.(type) {
	case pickle.Tuple:
		items = x
	case pickle.List:
		items = x
	default:
		return nil, nil, fmt.Errorf("expected a (prefix, bucket) pair, got %T", v)
	}
	if len(items) != 2 {
		return nil, nil, fmt.Errorf("expected a (prefix, bucket) pair, got %d items", len(items))
	}
	var out [2][]byte
	for i, it := range items {
		switch b := it.(type) {
		case []byte:
			out[i] = b
		case string:
			for j := 0; j < len(b); j++ {
				if b[j] >= 0x80 {
					return nil, nil, fmt.Errorf("non-ASCII str in index entry")
				}
			}
			out[i] = []byte(b)
		default:
			return nil, nil, fmt.Errorf("index entry holds %T, not bytes", it)
		}
	}
	return out[0], out[1], nil
}

// addBucket adds one prefix's bucket (suffixes block, then 6-byte positions
// block). A prefix seen again replaces the earlier bucket, as in Python.
func (l *loader) addBucket(prefixBytes, bucket []byte) error {
	if len(prefixBytes) != 6 {
		return fmt.Errorf("prefix of %d bytes, want 6", len(prefixBytes))
	}
	if len(bucket)%8 != 0 {
		return fmt.Errorf("bucket of %d bytes is not a multiple of 8", len(bucket))
	}
	var pb [8]byte
	copy(pb[2:], prefixBytes)
	prefix := binary.BigEndian.Uint64(pb[:])
	x := l.x
	n := len(bucket) / 8
	keys, vals := bucket[:2*n], bucket[2*n:]
	ascending := !l.loaded || prefix > l.last
	for i := 1; ascending && i < n; i++ {
		ascending = binary.BigEndian.Uint16(keys[2*i-2:]) < binary.BigEndian.Uint16(keys[2*i:])
	}
	if !ascending {
		// Rare forms: replace the prefix's entries, insert one by one.
		for hi := uint64(0); hi < 256; hi++ {
			if p := x.lookup(prefix<<8 | hi); p != nil {
				x.n -= len(p.keys)
				x.removePage(prefix<<8 | hi)
			}
		}
		for i := 0; i < n; i++ {
			oid := prefix<<16 | uint64(binary.BigEndian.Uint16(keys[2*i:]))
			x.Set(oid, getPos(vals[6*i:]))
		}
	} else {
		// Ascending and after every prefix so far: build pages directly,
		// each sized exactly.
		for i := 0; i < n; {
			hi := keys[2*i]
			j := i + 1
			for j < n && keys[2*j] == hi {
				j++
			}
			p := &page{keys: make([]byte, j-i), vals: make([]byte, 6*(j-i))}
			for k := i; k < j; k++ {
				p.keys[k-i] = keys[2*k+1]
			}
			copy(p.vals, vals[6*i:6*j])
			x.addPage(prefix<<8|uint64(hi), p)
			x.n += j - i
			i = j
		}
	}
	if n > 0 && (!l.loaded || prefix > l.last) {
		l.last, l.loaded = prefix, true
	}
	return nil
}
