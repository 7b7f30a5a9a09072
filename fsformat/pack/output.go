package pack

import (
	"io"
	"os"
)

// output is FILE.pack being written: one large buffer in front of the file,
// so that the length of a transaction can be patched while it is still
// buffered. With f nil (dry run) the bytes are only counted.
type output struct {
	f    *os.File
	buf  []byte
	base int64 // file offset of buf[0]
	err  error
}

const outputSize = 4 << 20

func newOutput(f *os.File, start int64) *output {
	return &output{f: f, buf: make([]byte, 0, outputSize), base: start}
}

func (o *output) pos() int64 { return o.base + int64(len(o.buf)) }

func (o *output) flush() error {
	if o.err != nil {
		return o.err
	}
	if o.f != nil && len(o.buf) > 0 {
		if _, err := o.f.WriteAt(o.buf, o.base); err != nil {
			o.err = err
			return err
		}
	}
	o.base += int64(len(o.buf))
	o.buf = o.buf[:0]
	return nil
}

func (o *output) write(b []byte) error {
	if len(o.buf)+len(b) > cap(o.buf) {
		if err := o.flush(); err != nil {
			return err
		}
		if len(b) > cap(o.buf) {
			if o.f != nil {
				if _, err := o.f.WriteAt(b, o.base); err != nil {
					o.err = err
					return err
				}
			}
			o.base += int64(len(b))
			return nil
		}
	}
	o.buf = append(o.buf, b...)
	return nil
}

// patch overwrites bytes already written at off.
func (o *output) patch(off int64, b []byte) error {
	if off >= o.base {
		copy(o.buf[off-o.base:], b)
		return nil
	}
	if o.f == nil {
		return nil
	}
	if _, err := o.f.WriteAt(b, off); err != nil {
		o.err = err
		return err
	}
	return nil
}

// readAt reads output bytes back (PackCopier's backward search).
func (o *output) readAt(p []byte, off int64) error {
	if off+int64(len(p)) > o.pos() {
		return io.ErrUnexpectedEOF
	}
	n := 0
	if off < o.base {
		m := int64(len(p))
		if o.base-off < m {
			m = o.base - off
		}
		if o.f == nil {
			return io.ErrUnexpectedEOF
		}
		if _, err := o.f.ReadAt(p[:m], off); err != nil {
			return err
		}
		n = int(m)
	}
	if n < len(p) {
		copy(p[n:], o.buf[off+int64(n)-o.base:])
	}
	return nil
}
