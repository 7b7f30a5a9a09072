package client

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/zeotest"
)

// fakeServer speaks the ZEO framing and handshake and answers each call
// with what answer returns (send: the frames to write, raw payloads already
// encoded, or nil to close the connection).
type fakeServer struct {
	ln   net.Listener
	addr string
	wg   sync.WaitGroup
	mu   sync.Mutex
	cons []net.Conn
}

func startFake(t *testing.T, letter byte, answer func(codec zeowire.Codec, m zeowire.Message) [][]byte) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, addr: ln.Addr().String()}
	codec := zeowire.CodecFor(letter)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.cons = append(f.cons, nc)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer nc.Close()
				nc.Write(zeowire.AppendFrame(nil, []byte{letter, '5'}))
				fr := zeowire.NewFrameReader(nc, 0)
				if _, err := fr.ReadFrame(); err != nil {
					return
				}
				for {
					p, err := fr.ReadFrame()
					if err != nil {
						return
					}
					m, err := codec.DecodeMessage(p)
					if err != nil || m.IsHeartbeat() {
						continue
					}
					out := answer(codec, m)
					if out == nil {
						return
					}
					for _, o := range out {
						if _, err := nc.Write(zeowire.AppendFrame(nil, o)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.cons {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func reply(codec zeowire.Codec, m zeowire.Message, v any) []byte {
	b, err := codec.AppendMessage(nil, &zeowire.Message{ID: m.ID, Kind: zeowire.KindReply, Name: zeowire.ReplyName, Args: v})
	if err != nil {
		panic(err)
	}
	return b
}

// normal answers register and a few calls correctly.
func normal(codec zeowire.Codec, m zeowire.Message) ([][]byte, bool) {
	switch m.Name {
	case "register", "lastTransaction":
		return [][]byte{reply(codec, m, zeowire.Tid(0x03f58e0000000001).Bytes())}, true
	}
	return nil, false
}

func TestMalformedReplies(t *testing.T) {
	for _, letter := range []byte{'Z', 'M'} {
		t.Run(string(letter), func(t *testing.T) {
			zeotest.NoLeaks(t)
			ctx := context.Background()
			f := startFake(t, letter, func(codec zeowire.Codec, m zeowire.Message) [][]byte {
				if m.Name == "lastTransaction" {
					// Junk first: an async message the client does not
					// know, a reply to an id never used, then a reply of
					// the wrong type.
					junk, _ := codec.AppendMessage(nil, &zeowire.Message{ID: int64(0), Kind: zeowire.KindAsync, Name: "serialnos", Args: zeowire.Tuple{}})
					return [][]byte{junk, reply(codec, zeowire.Message{ID: int64(999)}, nil), reply(codec, m, "not a tid")}
				}
				if out, ok := normal(codec, m); ok {
					return out
				}
				switch m.Name {
				case "iterator_start":
					return [][]byte{reply(codec, m, int64(0))}
				case "iterator_next":
					return [][]byte{reply(codec, m, zeowire.Tuple{"short"})}
				case "history":
					return [][]byte{reply(codec, m, zeowire.List{"not a dict"})}
				case "get_info":
					return [][]byte{reply(codec, m, int64(3))}
				}
				return [][]byte{reply(codec, m, nil)}
			})
			c, err := Connect(ctx, Options{Addrs: []string{f.addr}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.LastTransaction(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), f.addr+": lastTransaction: ") {
				t.Errorf("lastTransaction: %v", err)
			}
			for _, err := range c.Transactions(ctx, 0, 0) {
				if err == nil || !strings.Contains(err.Error(), f.addr+": iterator: iterator_next: malformed reply") {
					t.Errorf("iterator: %v", err)
				}
			}
			if _, err := c.History(ctx, 1, 1); err == nil || !strings.Contains(err.Error(), "malformed reply entry") {
				t.Errorf("history: %v", err)
			}
			if _, err := c.Info(ctx); err == nil || !strings.Contains(err.Error(), "get_info: malformed reply") {
				t.Errorf("info: %v", err)
			}
			// The connection survived all of it.
			if err := c.Ping(ctx); err != nil {
				t.Errorf("ping: %v", err)
			}
		})
	}
}

func TestServerKeepsClosing(t *testing.T) {
	zeotest.NoLeaks(t)
	ctx := context.Background()
	f := startFake(t, 'Z', func(codec zeowire.Codec, m zeowire.Message) [][]byte {
		if out, ok := normal(codec, m); ok && m.Name == "register" {
			return out
		}
		return nil // close on every call after register
	})
	c, err := Connect(ctx, Options{Addrs: []string{f.addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.ServerStatus(ctx)
	var le *ConnectionLostError
	if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), f.addr+": server_status: connection lost: ") || time.Since(start) > 5*time.Second {
		t.Errorf("%v", err)
	}
}

func TestHugeFrameAndGarbage(t *testing.T) {
	zeotest.NoLeaks(t)
	ctx := context.Background()
	// A server whose announcement is followed by a 4 GiB length.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.Write(zeowire.AppendFrame(nil, []byte("Z5")))
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 0xffffffff)
			nc.Write(hdr[:])
			time.Sleep(50 * time.Millisecond)
			nc.Close()
		}
	}()
	// A server that speaks something else entirely.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln2.Accept()
			if err != nil {
				return
			}
			nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			nc.Close()
		}
	}()
	_, err = Connect(ctx, Options{Addrs: []string{ln.Addr().String(), ln2.Addr().String()}, DialTimeout: 2 * time.Second})
	var ue *UnreachableError
	if !errors.As(err, &ue) || len(ue.Errs) != 2 || strings.Count(err.Error(), "; ") != 1 {
		t.Errorf("%v", err)
	}
	if !strings.HasPrefix(err.Error(), ln.Addr().String()+": register: zeo connection closed (frame of 4294967295 bytes exceeds the limit") {
		t.Errorf("%v", err)
	}
	ln.Close()
	ln2.Close()
	wg.Wait()
}

func TestCallTimeout(t *testing.T) {
	zeotest.NoLeaks(t)
	ctx := context.Background()
	f := startFake(t, 'M', func(codec zeowire.Codec, m zeowire.Message) [][]byte {
		if out, ok := normal(codec, m); ok && m.Name == "register" {
			return out
		}
		return [][]byte{} // never answers
	})
	c, err := Connect(ctx, Options{Addrs: []string{f.addr}, CallTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.LastTransaction(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != f.addr+": lastTransaction: context deadline exceeded" || time.Since(start) > 2*time.Second {
		t.Errorf("%v", err)
	}
	for _, err := range c.Transactions(ctx, 0, 0) {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("iterator: %v", err)
		}
	}
}

// TestCommitMessages checks the commit calls' argument types against what
// the Python client sends (zeo-protocol.md §3.3, §4.4): txn an int, user
// and description bytes, extension a dict, tid None, status ' '; storea
// (oid, serial, data, txn).
func TestCommitMessages(t *testing.T) {
	for _, letter := range []byte{'Z', 'M'} {
		t.Run(string(letter), func(t *testing.T) {
			zeotest.NoLeaks(t)
			var mu sync.Mutex
			var seen []zeowire.Message
			f := startFake(t, letter, func(codec zeowire.Codec, m zeowire.Message) [][]byte {
				mu.Lock()
				seen = append(seen, m)
				mu.Unlock()
				switch m.Name {
				case "vote":
					return [][]byte{reply(codec, m, zeowire.List{})}
				case "tpc_finish":
					return [][]byte{reply(codec, m, zeowire.Tid(0x03f58e0000000005).Bytes())}
				}
				if out, ok := normal(codec, m); ok {
					return out
				}
				return [][]byte{}
			})
			ctx := context.Background()
			c, err := Connect(ctx, Options{Addrs: []string{f.addr}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tid, err := c.Commit(ctx, []byte("/ alice"), []byte("d"), nil, []Store{{Oid: 3, Serial: 2, Data: []byte("x")}})
			if err != nil || tid != 0x03f58e0000000005 {
				t.Fatal(tid, err)
			}
			mu.Lock()
			defer mu.Unlock()
			var names []string
			for _, m := range seen {
				names = append(names, m.Name)
			}
			if strings.Join(names, " ") != "register tpc_begin storea vote tpc_finish" {
				t.Fatalf("calls %v", names)
			}
			if seen[0].Kind != zeowire.KindCall || seen[1].Kind != zeowire.KindAsync || seen[2].Kind != zeowire.KindAsync ||
				seen[3].Kind != zeowire.KindCall || seen[4].Kind != zeowire.KindCall {
				t.Errorf("kinds %v", seen)
			}
			b := seen[1].Args.(zeowire.Tuple)
			txn, isInt := b[0].(int64)
			user, _ := b[1].([]byte)
			desc, _ := b[2].([]byte)
			_, isDict := b[3].(zeowire.Dict)
			if len(b) != 6 || !isInt || txn <= 0 || string(user) != "/ alice" || string(desc) != "d" || !isDict || b[4] != nil || b[5] != " " {
				t.Errorf("tpc_begin %s", zeowire.Repr(b))
			}
			s := seen[2].Args.(zeowire.Tuple)
			if len(s) != 4 || !zeowire.Equal(s[0], zeowire.Oid(3).Bytes()) || !zeowire.Equal(s[1], zeowire.Tid(2).Bytes()) ||
				!zeowire.Equal(s[2], []byte("x")) || s[3] != txn {
				t.Errorf("storea %s", zeowire.Repr(s))
			}
			if v := seen[3].Args.(zeowire.Tuple); len(v) != 1 || v[0] != txn {
				t.Errorf("vote %s", zeowire.Repr(v))
			}
		})
	}
}
