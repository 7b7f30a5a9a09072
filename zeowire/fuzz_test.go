package zeowire_test

import (
	"encoding/hex"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// FuzzServerFrames sends a registered pickle connection one arbitrary frame
// followed by a ping: the server must answer the ping or close the
// connection, never panic or hang, and keep serving others.
func FuzzServerFrames(f *testing.F) { fuzzServerFrames(f, zeowire.PickleCodec{}) }

// FuzzServerFramesMsgpack is FuzzServerFrames on an "M5" connection.
func FuzzServerFramesMsgpack(f *testing.F) { fuzzServerFrames(f, zeowire.MsgpackCodec{}) }

func fuzzServerFrames(f *testing.F, codec zeowire.Codec) {
	encoding := "pickle"
	if codec.Letter() == 'M' {
		encoding = "msgpack"
	}
	files, _ := filepath.Glob(filepath.Join(zeoData, "*.jsonl"))
	for _, file := range files {
		for _, r := range readTranscript(f, file) {
			if r.Dir == "c2s" && r.Kind == "frame" && r.Encoding == encoding && len(r.Hex) < 2000 {
				b, _ := hex.DecodeString(r.Hex)
				f.Add(b)
			}
		}
	}
	st := memstore.New("fuzz")
	srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}, Logger: slog.New(slog.DiscardHandler), MaxFrameSize: 1 << 20, Now: frozen}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(f.Context())
	register, _ := codec.AppendMessage(nil, &zeowire.Message{ID: int64(1), Kind: zeowire.KindCall, Name: "register", Args: zeowire.Tuple{"1", false}})
	ping, _ := codec.AppendMessage(nil, &zeowire.Message{ID: "ping-after", Kind: zeowire.KindCall, Name: "ping", Args: zeowire.Tuple{}})
	f.Fuzz(func(t *testing.T, frame []byte) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		fr := zeowire.NewFrameReader(nc, 0)
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		var out []byte
		out = zeowire.AppendFrame(out, []byte{codec.Letter(), '5'})
		out = zeowire.AppendFrame(out, register)
		out = zeowire.AppendFrame(out, frame)
		out = zeowire.AppendFrame(out, ping)
		nc.Write(out)
		if _, err := fr.ReadFrame(); err != nil { // register reply
			t.Fatal(err)
		}
		for {
			p, err := fr.ReadFrame()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("server neither answered nor closed")
				}
				return // closed: fine
			}
			m, err := codec.DecodeMessage(p)
			if err != nil {
				t.Fatalf("server sent an undecodable frame %x: %v", p, err)
			}
			if id, ok := m.ID.(string); ok && id == "ping-after" {
				return
			}
		}
	})
}
