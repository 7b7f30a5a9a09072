package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

// blobRemoval is one line of ZODB's <blob_dir>/.removed: a whole oid
// directory (whole) or the file of one revision.
type blobRemoval struct {
	oid   fsformat.Oid
	tid   fsformat.Tid
	whole bool
}

// copier holds what the copy phases of one database share.
type copier struct {
	d     *db
	w     *window
	out   *output
	idx   *fsindex.Index
	blobs bool // the database has a blob directory: note dropped blob records
	cls   refs.Scanner

	removals []blobRemoval
	hdr      []byte
	zero     [8]byte

	recordsKept, recordsDropped int
	txnsKept, txnsDropped       int
	pending                     []oidPos
	warn                        func(string)
}

type oidPos struct {
	oid uint64
	pos uint64
}

func (c *copier) writeRecord(oid fsformat.Oid, tid fsformat.Tid, prev, tloc int64, data []byte, back int64) error {
	h := fsformat.DataHeader{Oid: oid, Tid: tid, Prev: prev, TxnPos: tloc, DataLen: int64(len(data))}
	c.hdr = h.AppendTo(c.hdr[:0])
	if len(data) == 0 {
		c.hdr = binary.BigEndian.AppendUint64(c.hdr, uint64(back))
		return c.out.write(c.hdr)
	}
	if err := c.out.write(c.hdr); err != nil {
		return err
	}
	return c.out.write(data)
}

// copyInline copies the record at pos, which holds its data, with the given
// prev and tloc, streaming the data in pieces so that a huge record never
// has to fit in memory.
func (c *copier) copyInline(r *record, pos, prev, tloc int64) error {
	h := fsformat.DataHeader{Oid: r.Oid, Tid: r.Tid, Prev: prev, TxnPos: tloc, DataLen: r.DataLen}
	c.hdr = h.AppendTo(c.hdr[:0])
	if err := c.out.write(c.hdr); err != nil {
		return err
	}
	for off := int64(0); off < r.DataLen; {
		n := min(r.DataLen-off, 1<<20)
		b, err := c.w.at(pos+fsformat.DataHeaderLen+off, int(n))
		if err != nil {
			return fmt.Errorf("%s: data record at %d: %w", c.d.path, pos, err)
		}
		if err := c.out.write(b); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// resolve returns the data a backpointer chain ends in (nil: none).
func (c *copier) resolve(oid fsformat.Oid, back int64) ([]byte, error) {
	if back == 0 {
		return nil, nil
	}
	data, _, _, err := c.d.file.LoadBack(oid, back)
	if errors.Is(err, fsformat.ErrNoData) {
		return nil, nil
	}
	return data, err
}

// toPacktime is copyToPacktime (pack.md §3).
func (c *copier) toPacktime(progress func(int64)) error {
	d := c.d
	var r record
	n := 0
	for pos := int64(fsformat.FileHeaderLen); pos < d.packpos; {
		if n++; n&1023 == 0 {
			progress(pos)
		}
		b, err := c.w.at(pos, fsformat.TxnHeaderLen)
		if err != nil {
			return fmt.Errorf("%s: transaction at %d: %w", d.path, pos, err)
		}
		th := fsformat.ParseTxnHeader(b)
		hl := th.HeaderLen()
		tend := pos + th.Len
		newTpos := int64(-1)
		for dpos := pos + hl; dpos < tend; {
			if err := c.readRecord(dpos, &r); err != nil {
				return err
			}
			next := dpos + r.len()
			if !d.isReachable(r.Oid, dpos) {
				c.recordsDropped++
				if c.blobs {
					if err := c.noteBlob(dpos, &r); err != nil {
						return err
					}
				}
				dpos = next
				continue
			}
			if newTpos < 0 {
				newTpos = c.out.pos()
				meta, err := c.w.at(pos, int(hl))
				if err != nil {
					return fmt.Errorf("%s: transaction at %d: %w", d.path, pos, err)
				}
				if err := c.out.write(meta[:16]); err != nil {
					return err
				}
				if err := c.out.write([]byte{fsformat.StatusPacked}); err != nil {
					return err
				}
				if err := c.out.write(meta[17:]); err != nil {
					return err
				}
			}
			c.idx.Set(uint64(r.Oid), uint64(c.out.pos()))
			if r.DataLen > 0 {
				if err := c.copyInline(&r, dpos, 0, newTpos); err != nil {
					return err
				}
			} else {
				data, err := c.resolve(r.Oid, r.back)
				if err != nil {
					return fmt.Errorf("%s: data record at %d: %w", d.path, dpos, err)
				}
				if err := c.writeRecord(r.Oid, r.Tid, 0, newTpos, data, 0); err != nil {
					return err
				}
			}
			c.recordsKept++
			dpos = next
		}
		if newTpos >= 0 {
			tlen := c.out.pos() - newTpos
			var tl [8]byte
			binary.BigEndian.PutUint64(tl[:], uint64(tlen))
			if err := c.out.patch(newTpos+8, tl[:]); err != nil {
				return err
			}
			if err := c.out.write(tl[:]); err != nil {
				return err
			}
			c.txnsKept++
		} else {
			c.txnsDropped++
		}
		pos = tend + fsformat.TrailerLen
	}
	return c.out.err
}

func (c *copier) readRecord(pos int64, r *record) error {
	b, err := c.w.at(pos, fsformat.DataHeaderLen)
	if err != nil {
		return fmt.Errorf("%s: data record at %d: %w", c.d.path, pos, err)
	}
	r.DataHeader = fsformat.ParseDataHeader(b)
	r.back = 0
	if r.DataLen == 0 {
		bb, err := c.w.at(pos+fsformat.DataHeaderLen, 8)
		if err != nil {
			return fmt.Errorf("%s: data record at %d: %w", c.d.path, pos, err)
		}
		r.back = int64(binary.BigEndian.Uint64(bb))
	}
	return nil
}

var blobMarker = []byte("ZODB.blob")

// noteBlob is the blob bookkeeping for a dropped record (pack.md §6).
func (c *copier) noteBlob(pos int64, r *record) error {
	var data []byte
	var err error
	if r.DataLen > 1<<20 {
		return nil // blob records are tiny (class Blob, state None)
	}
	if r.DataLen > 0 {
		data, err = c.w.at(pos+fsformat.DataHeaderLen, int(r.DataLen))
	} else {
		data, err = c.resolve(r.Oid, r.back)
	}
	if err != nil {
		return fmt.Errorf("%s: data record at %d: %w", c.d.path, pos, err)
	}
	if data == nil || !bytes.Contains(data, blobMarker) {
		return nil
	}
	mod, name := c.cls.Class(data)
	if string(mod) != "ZODB.blob" || string(name) != "Blob" {
		return nil
	}
	if rp, ok := c.d.reachPos(r.Oid); ok {
		h, err := c.d.file.ReadDataHeaderAt(int64(rp))
		if err != nil {
			return err
		}
		if h.Tid != r.Tid {
			c.removals = append(c.removals, blobRemoval{oid: r.Oid, tid: r.Tid})
		}
		return nil
	}
	c.removals = append(c.removals, blobRemoval{oid: r.Oid, whole: true})
	return nil
}

// rest is copyRest (pack.md §4) from ipos to end.
func (c *copier) rest(ipos, end int64, progress func(int64)) error {
	d := c.d
	var r record
	n := 0
	for ipos < end {
		if n++; n&1023 == 0 {
			progress(ipos)
		}
		b, err := c.w.at(ipos, fsformat.TxnHeaderLen)
		if err != nil {
			return fmt.Errorf("%s: transaction at %d: %w", d.path, ipos, err)
		}
		th := fsformat.ParseTxnHeader(b)
		hl := th.HeaderLen()
		meta, err := c.w.at(ipos, int(hl))
		if err != nil {
			return fmt.Errorf("%s: transaction at %d: %w", d.path, ipos, err)
		}
		outTpos := c.out.pos()
		if err := c.out.write(meta); err != nil {
			return err
		}
		tend := ipos + th.Len
		c.pending = c.pending[:0]
		for dpos := ipos + hl; dpos < tend; {
			if err := c.readRecord(dpos, &r); err != nil {
				return err
			}
			next := dpos + r.len()
			prev, _ := c.idx.Get(uint64(r.Oid))
			c.pending = append(c.pending, oidPos{uint64(r.Oid), uint64(c.out.pos())})
			if r.DataLen > 0 {
				if err := c.copyInline(&r, dpos, int64(prev), outTpos); err != nil {
					return err
				}
				dpos = next
				continue
			}
			var data []byte
			backOut := int64(0)
			if r.back != 0 {
				if data, err = c.resolve(r.Oid, r.back); err != nil {
					return fmt.Errorf("%s: data record at %d: %w", d.path, dpos, err)
				}
				h, err := d.file.ReadDataHeaderAt(r.back)
				if err != nil {
					return err
				}
				if backOut, err = c.findBack(h.Tid, r.Oid, data, outTpos); err != nil {
					return fmt.Errorf("%s: data record at %d: %w", d.path, dpos, err)
				}
			}
			if backOut != 0 {
				data = nil
			}
			if err := c.writeRecord(r.Oid, r.Tid, int64(prev), outTpos, data, backOut); err != nil {
				return err
			}
			dpos = next
		}
		if got := c.out.pos() - outTpos; got != th.Len {
			return fmt.Errorf("%s: transaction at %d: copied length %d differs from its length %d (a backpointer could not be kept)", d.path, ipos, got, th.Len)
		}
		var tl [8]byte
		binary.BigEndian.PutUint64(tl[:], uint64(th.Len))
		if err := c.out.write(tl[:]); err != nil {
			return err
		}
		for _, p := range c.pending {
			c.idx.Set(p.oid, p.pos)
		}
		ipos = tend + fsformat.TrailerLen
	}
	return c.out.err
}

// ErrBackpointerTxn is PackCopier's PackError: the transaction a
// backpointer names is not in the packed output.
var ErrBackpointerTxn = errors.New("Invalid backpointer transaction id")

// findBack is PackCopier._resolve_backpointer: the position, in the output,
// of the record of oid in the transaction tid (searched backwards from
// before), if it holds the same data or is itself a backpointer; else 0.
func (c *copier) findBack(tid fsformat.Tid, oid fsformat.Oid, data []byte, before int64) (int64, error) {
	var b [fsformat.DataHeaderLen]byte
	pos := before
	tpos := int64(-1)
	for pos > fsformat.FileHeaderLen {
		if err := c.out.readAt(b[:8], pos-8); err != nil {
			return 0, err
		}
		pos -= int64(binary.BigEndian.Uint64(b[:8])) + 8
		if err := c.out.readAt(b[:fsformat.TxnHeaderLen], pos); err != nil {
			return 0, err
		}
		t := fsformat.TidFromBytes(b[:8])
		if t == tid {
			tpos = pos
			break
		}
		if t < tid { // output tids increase: it is not further back
			break
		}
	}
	if tpos < 0 {
		return 0, ErrBackpointerTxn
	}
	th := fsformat.ParseTxnHeader(b[:fsformat.TxnHeaderLen])
	tend := tpos + th.Len
	for p := tpos + th.HeaderLen(); p < tend; {
		if err := c.out.readAt(b[:], p); err != nil {
			return 0, err
		}
		h := fsformat.ParseDataHeader(b[:])
		if h.Oid == oid {
			if h.DataLen == 0 {
				return p, nil
			}
			if h.DataLen != int64(len(data)) {
				if c.warn != nil {
					c.warn(fmt.Sprintf("Mismatch between data and backpointer at %d", p))
				}
				return 0, nil
			}
			got := make([]byte, h.DataLen)
			if err := c.out.readAt(got, p+fsformat.DataHeaderLen); err != nil {
				return 0, err
			}
			if !bytes.Equal(got, data) {
				return 0, nil
			}
			return p, nil
		}
		if h.DataLen == 0 {
			p += fsformat.DataHeaderLen + 8
		} else {
			p += fsformat.DataHeaderLen + h.DataLen
		}
	}
	return 0, nil
}
