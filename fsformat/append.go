package fsformat

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Index maps each oid to the position of its latest data record. The
// Appender reads it for prev pointers and updates it after each commit.
// MapIndex is a simple implementation; fsformat/fsindex provides the
// compact one.
type Index interface {
	Get(oid Oid) (pos int64, ok bool)
	Set(oid Oid, pos int64)
}

// MapIndex is an Index backed by a Go map.
type MapIndex map[Oid]int64

// Get implements Index.
func (m MapIndex) Get(oid Oid) (int64, bool) { p, ok := m[oid]; return p, ok }

// Set implements Index.
func (m MapIndex) Set(oid Oid, pos int64) { m[oid] = pos }

// TxnMeta describes a transaction to append.
type TxnMeta struct {
	// Tid to use; 0 means "now", made later than the last tid with
	// LaterThan, as FileStorage.tpc_begin does. An explicit tid must be
	// greater than the last one.
	Tid         Tid
	Status      byte // 0 means ' '; restore/pack pass 'p'
	User        []byte
	Description []byte
	Extension   []byte // pickled dict, or empty
}

// Appender appends transactions to a Data.fs exactly as FileStorage's
// two-phase commit writes them: the header goes out with status 'c' and the
// records follow; Commit writes the redundant length, the final tlen and
// then the final status byte. Until that last one-byte write the file holds
// an interrupted commit, which every reader ignores and a writable open
// truncates (ScanIndex), so a crash never leaves a half transaction that
// looks committed. Durability is the caller's choice: call Sync after
// Commit (FileStorage fsyncs at every tpc_finish).
//
// It is the only code in zodbctl that writes records. It does not take
// FileStorage's lock: call LockStorage first when a ZODB process could be
// using the file.
type Appender struct {
	Name string
	// Now is the clock used for new tids (time.Now if nil).
	Now func() time.Time
	// Durable makes Commit fsync twice: once the records, redundant length
	// and tlen are written (so the status byte can never reach the disk
	// before them), and again after the status byte. FileStorage itself
	// only fsyncs once, after the status; without Durable, call Sync after
	// Commit for the same guarantee.
	Durable bool

	f       *os.File
	idx     Index
	pos     int64 // end of the committed data: where the next transaction goes
	lastPos int64 // position of the last committed transaction (0: none)
	lastTid Tid

	// the transaction in progress
	in       bool
	w        *bufio.Writer
	ow       *io.OffsetWriter
	tpos     int64
	tid      Tid
	status   byte
	hl       int64
	tlen     int64 // bytes written so far from tpos
	written  []oidPos
	buf      []byte
	broken   error // set when the file's state is unknown; Begin refuses
	prepared bool  // Prepare done: the transaction awaits Finish or Abort
}

type oidPos struct {
	oid Oid
	pos int64
}

// Create makes a new, empty FileStorage (just the FS30 magic). It fails if
// path exists.
func Create(path string, idx Index) (*Appender, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(MagicFS30[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: writing header: %w", path, err)
	}
	if idx == nil {
		idx = MapIndex{}
	}
	return &Appender{Name: path, f: f, idx: idx, pos: FileHeaderLen}, nil
}

// OpenAppender opens an existing FS30 file for appending. It scans the
// whole file like FileStorage's read_index (ScanIndex), filling idx, and
// repairs an incomplete tail as a writable FileStorage open does: a partial
// header is cut off, an interrupted ('c') or truncated transaction is
// copied to <name>.trN and cut off. warn receives FileStorage's messages.
func OpenAppender(path string, idx Index, warn func(string)) (*Appender, error) {
	return openAppender(path, idx, -1, warn)
}

// OpenAppenderAt is OpenAppender trusting idx for the file up to pos, the
// position saved with it in Data.fs.index, as FileStorage does with a saved
// index: it runs FileStorage's sanity check (CheckSavedIndex) and then scans
// only from pos to the end (ScanIndexFrom), adding the transactions
// committed after the index was saved and repairing the tail as
// OpenAppender does. If the check fails, the returned error wraps
// ErrIndexUnusable and nothing was changed (idx neither, the file neither):
// the caller logs FileStorage's "Ignoring index for <path>" and falls back
// to OpenAppender with an empty index.
func OpenAppenderAt(path string, idx Index, pos int64, warn func(string)) (*Appender, error) {
	if pos < 0 {
		return nil, fmt.Errorf("%s: index position %d: %w", path, pos, ErrIndexUnusable)
	}
	return openAppender(path, idx, pos, warn)
}

// openAppender opens path for appending, scanning it all (from < 0) or
// from the saved index position from.
func openAppender(path string, idx Index, from int64, warn func(string)) (*Appender, error) {
	if warn == nil {
		warn = func(string) {}
	}
	if idx == nil {
		idx = MapIndex{}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() == 0 {
		if from >= 0 {
			f.Close()
			return nil, fmt.Errorf("%s: index position %d: the file is empty: %w", path, from, ErrIndexUnusable)
		}
		if _, err := f.Write(MagicFS30[:]); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: writing header: %w", path, err)
		}
		return &Appender{Name: path, f: f, idx: idx, pos: FileHeaderLen}, nil
	}
	var res ScanResult
	if from < 0 {
		res, err = ScanIndex(f, path, idx, warn)
	} else {
		var ltid Tid
		if ltid, err = CheckSavedIndex(f, st.Size(), path, idx, from); err == nil {
			res, err = ScanIndexFrom(f, st.Size(), path, idx, from, ltid, warn)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if res.Magic != MagicFS30 {
		f.Close()
		return nil, formatErr(path, 0, "cannot append to a %q file (only FS30)", res.Magic[:])
	}
	if res.Truncate >= 0 {
		warn(res.TailWarning)
		if res.CopyTail {
			if err := saveTail(f, path, res.Truncate, st.Size(), warn); err != nil {
				f.Close()
				return nil, err
			}
		}
		if err := f.Truncate(res.Truncate); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: truncating to %d: %w", path, res.Truncate, err)
		}
	}
	a := &Appender{Name: path, f: f, idx: idx, pos: res.End, lastTid: res.LastTid}
	if res.End > FileHeaderLen {
		var b [8]byte
		if _, err := f.ReadAt(b[:], res.End-TrailerLen); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: reading the last transaction length: %w", path, err)
		}
		a.lastPos = res.End - TrailerLen - int64(binary.BigEndian.Uint64(b[:]))
	}
	return a, nil
}

func saveTail(f *os.File, name string, from, size int64, warn func(string)) error {
	for i := 0; ; i++ {
		tr := name + ".tr" + strconv.Itoa(i)
		out, err := os.OpenFile(tr, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		warn(fmt.Sprintf("Writing truncated data from %s to %s", name, tr))
		_, err = io.Copy(out, io.NewSectionReader(f, from, size-from))
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}
}

// Pos is the end of the committed data: the position of the next
// transaction.
func (a *Appender) Pos() int64 { return a.pos }

// LastTxnPos is the position of the last committed transaction (0 if
// there is none).
func (a *Appender) LastTxnPos() int64 { return a.lastPos }

// LastTid is the tid of the last committed transaction (0 if none).
func (a *Appender) LastTid() Tid { return a.lastTid }

// File gives the underlying file (e.g. to read back through ReadAt).
func (a *Appender) File() *os.File { return a.f }

// Begin starts a transaction. Its header is written at once with status
// 'c' (an interrupted commit until Commit).
func (a *Appender) Begin(meta TxnMeta) (Tid, error) {
	if a.in {
		return 0, errors.New("fsformat: Begin while a transaction is in progress")
	}
	if a.broken != nil {
		return 0, a.broken
	}
	if len(meta.User) > 65535 {
		return 0, errors.New("user name too long")
	}
	if len(meta.Description) > 65535 {
		return 0, errors.New("description too long")
	}
	if len(meta.Extension) > 65535 {
		return 0, errors.New("too much extension data")
	}
	tid := meta.Tid
	if tid == 0 {
		now := time.Now
		if a.Now != nil {
			now = a.Now
		}
		tid = TidFromTime(now()).LaterThan(a.lastTid)
	} else if tid <= a.lastTid {
		return 0, fmt.Errorf("%s: tid %s is not later than the last tid %s", a.Name, tid, a.lastTid)
	}
	status := meta.Status
	if status == 0 {
		status = StatusNormal
	}
	if status != StatusNormal && status != StatusPacked {
		return 0, fmt.Errorf("fsformat: cannot write transaction status %q", status)
	}
	a.in, a.tpos, a.tid, a.status = true, a.pos, tid, status
	a.written = a.written[:0]
	if a.ow == nil {
		a.ow = io.NewOffsetWriter(a.f, 0)
		a.w = bufio.NewWriterSize(a.ow, 1<<20)
	}
	if _, err := a.ow.Seek(a.pos, io.SeekStart); err != nil {
		return 0, err
	}
	a.w.Reset(a.ow)
	h := TxnHeader{Tid: tid, Len: 0, Status: StatusCheckpoint,
		UserLen: uint16(len(meta.User)), DescLen: uint16(len(meta.Description)), ExtLen: uint16(len(meta.Extension))}
	a.hl = h.HeaderLen()
	a.buf = h.AppendTo(a.buf[:0])
	a.buf = append(a.buf, meta.User...)
	a.buf = append(a.buf, meta.Description...)
	a.buf = append(a.buf, meta.Extension...)
	a.tlen = a.hl
	if _, err := a.w.Write(a.buf); err != nil {
		a.Abort()
		return 0, err
	}
	return tid, nil
}

// Store appends a data record with a new state of oid and returns its
// position. prev is the oid's committed position (as FileStorage.store).
func (a *Appender) Store(oid Oid, data []byte) (int64, error) {
	if len(data) == 0 {
		return 0, errors.New("fsformat: Store with empty data (use StoreBackpointer)")
	}
	return a.record(oid, data, 0)
}

// StoreBackpointer appends an undo-style record whose state is the one of
// the record at back (which must be an earlier record of the same oid); back
// 0 records that the object does not exist (undone creation, deleteObject).
func (a *Appender) StoreBackpointer(oid Oid, back int64) (int64, error) {
	if back < 0 || (back != 0 && back >= a.tpos) {
		return 0, fmt.Errorf("fsformat: backpointer %d for oid %s must point before the transaction at %d", back, oid, a.tpos)
	}
	return a.record(oid, nil, back)
}

// StoreRaw appends a record with an explicit prev pointer instead of the
// index's: pack writes prev 0 for records at or before the pack time and
// copies (restore) keep their own chains. data nil/empty makes a
// backpointer record to back.
func (a *Appender) StoreRaw(oid Oid, prev int64, data []byte, back int64) (int64, error) {
	if prev < 0 || (prev != 0 && prev >= a.tpos+a.tlen) {
		return 0, fmt.Errorf("fsformat: prev pointer %d for oid %s must point before the record", prev, oid)
	}
	if len(data) == 0 && (back < 0 || (back != 0 && back >= a.tpos+a.tlen)) {
		return 0, fmt.Errorf("fsformat: backpointer %d for oid %s must point before the record", back, oid)
	}
	return a.write(oid, prev, data, back)
}

// Delete records that oid no longer exists (deleteObject): a backpointer 0.
func (a *Appender) Delete(oid Oid) (int64, error) { return a.record(oid, nil, 0) }

func (a *Appender) record(oid Oid, data []byte, back int64) (int64, error) {
	if !a.in {
		return 0, errors.New("fsformat: store outside a transaction")
	}
	prev, _ := a.idx.Get(oid)
	return a.write(oid, prev, data, back)
}

func (a *Appender) write(oid Oid, prev int64, data []byte, back int64) (int64, error) {
	if !a.in || a.prepared {
		return 0, errors.New("fsformat: store outside a transaction or after Prepare")
	}
	pos := a.tpos + a.tlen
	h := DataHeader{Oid: oid, Tid: a.tid, Prev: prev, TxnPos: a.tpos, DataLen: int64(len(data))}
	a.buf = h.AppendTo(a.buf[:0])
	if len(data) == 0 {
		a.buf = binary.BigEndian.AppendUint64(a.buf, uint64(back))
	}
	if _, err := a.w.Write(a.buf); err != nil {
		return 0, err
	}
	if _, err := a.w.Write(data); err != nil {
		return 0, err
	}
	a.tlen += int64(len(a.buf)) + int64(len(data))
	a.written = append(a.written, oidPos{oid, pos})
	return pos, nil
}

// Commit finishes the transaction: Prepare then Finish.
func (a *Appender) Commit() (Tid, error) {
	if err := a.Prepare(); err != nil {
		return 0, err
	}
	return a.Finish()
}

// Prepare is tpc_vote, as in FileStorage: everything of the transaction
// but its status byte reaches the file (the buffered records, the redundant
// length, the final length in the header), then with Durable an fsync.
// Disk full and I/O errors show here, while the transaction can still be
// refused: a failed Prepare aborts it. Afterwards only Finish or Abort.
func (a *Appender) Prepare() error {
	if !a.in || a.prepared {
		return errors.New("fsformat: Prepare outside a transaction")
	}
	b := binary.BigEndian.AppendUint64(a.buf[:0], uint64(a.tlen))
	if _, err := a.w.Write(b); err != nil {
		a.Abort()
		return err
	}
	if err := a.w.Flush(); err != nil {
		a.Abort()
		return err
	}
	if _, err := a.f.WriteAt(b, a.tpos+8); err != nil {
		a.Abort()
		return err
	}
	if a.Durable {
		if err := a.f.Sync(); err != nil {
			a.Abort()
			return err
		}
	}
	a.prepared = true
	return nil
}

// Finish is tpc_finish: the status byte is written last (and with Durable
// synced), then the transaction counts as committed.
func (a *Appender) Finish() (Tid, error) {
	if !a.in || !a.prepared {
		return 0, errors.New("fsformat: Finish of a transaction that was not prepared")
	}
	b := append(a.buf[:0], a.status)
	if _, err := a.f.WriteAt(b, a.tpos+16); err != nil {
		a.Abort()
		return 0, err
	}
	if a.Durable {
		if err := a.f.Sync(); err != nil {
			// The status may or may not be on disk: the file must be
			// reopened (OpenAppender) to know.
			a.in, a.prepared = false, false
			a.broken = fmt.Errorf("%s: fsync after commit: %w", a.Name, err)
			return 0, a.broken
		}
	}
	for _, w := range a.written {
		a.idx.Set(w.oid, w.pos)
	}
	a.lastPos = a.tpos
	a.pos = a.tpos + a.tlen + TrailerLen
	a.lastTid = a.tid
	a.in, a.prepared = false, false
	return a.tid, nil
}

// Abort drops the transaction in progress: the file is truncated back to
// the end of the committed data.
func (a *Appender) Abort() error {
	if !a.in {
		return nil
	}
	a.in, a.prepared = false, false
	a.w.Reset(a.ow)
	return a.f.Truncate(a.pos)
}

// Sync fsyncs the file.
func (a *Appender) Sync() error { return a.f.Sync() }

// Close aborts any transaction in progress and closes the file.
func (a *Appender) Close() error {
	a.Abort()
	return a.f.Close()
}
