package pickle

import (
	"testing"
)

var loadBeforeFrame = []byte("\x80\x03(C\x08\x00\x00\x00\x00\x00\x00\x00\x01C\x08\x03\xac\x11\xb7\x71\xfa\x1c\x01\x86\x89X\x0a\x00\x00\x00loadBeforeC\x08\x00\x00\x00\x00\x00\x00\x00\x01C\x08\x03\xac\x11\xb7\x71\xfa\x1c\x01\x86t.")

// BenchmarkDecodeLoadBefore: a ZEO loadBefore request with a reused Decoder.
func BenchmarkDecodeLoadBefore(b *testing.B) {
	var d Decoder
	d.AliasInput = true
	b.ReportAllocs()
	for b.Loop() {
		d.Reset(loadBeforeFrame)
		if _, err := d.Decode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeLoadBeforeReply: the reply (msgid, 0, '.reply', (data, tid, None))
// into a reused buffer.
func BenchmarkEncodeLoadBeforeReply(b *testing.B) {
	oid := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	tid := []byte{3, 0xac, 0x11, 0xb7, 0x71, 0xfa, 0x1c, 0}
	data := make([]byte, 200)
	var msg any = Tuple{Tuple{oid, tid}, int64(0), ".reply", Tuple{data, tid, nil}}
	e := Encoder{Protocol: 3, Fast: true}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = e.Append(buf[:0], msg)
		if err != nil {
			b.Fatal(err)
		}
	}
}
