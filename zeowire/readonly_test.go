package zeowire_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
)

// codecConn is a raw connection speaking one encoding.
type codecConn struct {
	*rawConn
	codec  zeowire.Codec
	nextID int64
}

func (c *codecConn) send(kind zeowire.Kind, id int64, name string, args ...any) {
	c.t.Helper()
	if args == nil {
		args = []any{}
	}
	p, err := c.codec.AppendMessage(nil, &zeowire.Message{ID: id, Kind: kind, Name: name, Args: zeowire.Tuple(args)})
	if err != nil {
		c.t.Fatal(err)
	}
	c.rawConn.send(p)
}

// call sends a call and returns its reply, skipping async messages.
func (c *codecConn) call(name string, args ...any) zeowire.Message {
	c.t.Helper()
	c.nextID++
	c.send(zeowire.KindCall, c.nextID, name, args...)
	for {
		m, err := c.codec.DecodeMessage(c.recv())
		if err != nil {
			c.t.Fatalf("%s: %v", name, err)
		}
		if m.Kind == zeowire.KindAsync {
			continue
		}
		if id, _ := zeowire.AsInt(m.ID); id != c.nextID {
			c.t.Fatalf("%s: reply to %v, want %d", name, m.ID, c.nextID)
		}
		return m
	}
}

// errorClass is the exception class of an error reply, "" for a result.
func errorClass(m zeowire.Message) string {
	if m.Kind != zeowire.KindError {
		return ""
	}
	if tup, ok := m.Args.(zeowire.Tuple); ok && len(tup) == 2 {
		if s, ok := tup[0].(string); ok {
			return s
		}
	}
	return "?"
}

func dialCodec(t *testing.T, addr string, letter byte) *codecConn {
	t.Helper()
	r := dialRaw(t, addr)
	if got := r.recv(); len(got) != 2 || got[0] != letter {
		t.Fatalf("announcement %q, want %c5", got, letter)
	}
	r.send([]byte{letter, '5'})
	return &codecConn{rawConn: r, codec: zeowire.CodecFor(letter)}
}

// Every write path is refused with ReadOnlyError on a read-only storage, a
// read-only server and a read-only registration, in both encodings, and
// the Data.fs stays byte for byte the same (spec 9.6, recording
// i-readonly-server). Sync calls get the ReadOnlyError reply; the same
// calls sent async (as clients send them) close the connection. pack is
// not a write for the server (allowed on a read-only server, as the
// reference does) but a read-only FileStorage refuses it.
func TestReadOnlyRefusesEveryWrite(t *testing.T) {
	orig, err := os.ReadFile("../testdata/fs/basic.fs")
	if err != nil {
		t.Fatal(err)
	}
	setups := []struct {
		name            string
		storageReadOnly bool // fsstore opened read-only
		serverReadOnly  bool // Server.ReadOnly
		packRefused     bool
	}{
		{"read-only storage", true, false, true},
		{"read-only server", false, true, false},
		{"read-only registration", false, false, false},
	}
	for _, setup := range setups {
		for _, letter := range []byte{'Z', 'M'} {
			t.Run(setup.name+"/"+string(letter), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "Data.fs")
				if err := os.WriteFile(path, orig, 0o644); err != nil {
					t.Fatal(err)
				}
				blobDir := filepath.Join(dir, "blobs")
				if err := os.Mkdir(blobDir, 0o700); err != nil {
					t.Fatal(err)
				}
				store, err := fsstore.Open(path, fsstore.Options{ReadOnly: setup.storageReadOnly, BlobDir: blobDir})
				if err != nil {
					t.Fatal(err)
				}
				defer store.Close()
				if setup.storageReadOnly {
					// The storage itself refuses, whoever calls it.
					if _, err := store.Begin(context.Background(), zeowire.TxnMeta{}); !errors.Is(err, zeowire.ErrReadOnly) {
						t.Errorf("Begin on a read-only store: %v", err)
					}
					if err := store.Pack(context.Background(), float64(time.Now().Unix())); !errors.Is(err, zeowire.ErrReadOnly) {
						t.Errorf("Pack on a read-only store: %v", err)
					}
				}
				ts := startServer(t, func(s *zeowire.Server) {
					s.Storages = map[string]zeowire.Storage{"1": store}
					s.ReadOnly = setup.serverReadOnly
					// As zodbctl serve does for <filestorage> read-only.
					s.ReadOnlyStorages = map[string]bool{"1": setup.storageReadOnly}
					s.Msgpack = letter == 'M'
					s.Now = nil
				})
				last := store.LastTransaction()
				blobsBefore := listTree(t, blobDir)
				oid := z64 // the root exists in basic.fs
				serial := last.Bytes()
				register := func(c *codecConn) {
					t.Helper()
					m := c.call("register", "1", false)
					if setup.storageReadOnly || setup.serverReadOnly {
						if cl := errorClass(m); cl != zeowire.ClassReadOnlyError {
							t.Fatalf("writable register: %q %v, want ReadOnlyError", cl, m.Args)
						}
					} else if errorClass(m) != "" {
						t.Fatalf("writable register on a writable server: %v", m.Args)
					}
					if !setup.storageReadOnly && !setup.serverReadOnly {
						// Start over on a fresh connection registered read-only.
						c.rawConn.nc.Close()
						*c = *dialCodec(t, ts.addr, letter)
					}
					if m := c.call("register", "1", true); errorClass(m) != "" {
						t.Fatalf("read-only register: %v", m.Args)
					}
				}
				writes := []struct {
					name string
					args []any
				}{
					{"tpc_begin", []any{int64(1234), []byte(""), []byte(""), zeowire.Dict{}, nil, " "}},
					{"storea", []any{oid, serial, []byte("data"), int64(1234)}},
					{"deleteObject", []any{oid, serial, int64(1234)}},
					{"restorea", []any{oid, serial, []byte("data"), nil, int64(1234)}},
					{"checkCurrentSerialInTransaction", []any{oid, serial, int64(1234)}},
					{"undoa", []any{[]byte(base64.StdEncoding.EncodeToString(serial)), int64(1234)}},
					{"storeBlobStart", nil},
					{"storeBlobChunk", []any{[]byte("chunk")}},
					{"storeBlobEnd", []any{oid, serial, []byte("data"), int64(1234)}},
					{"storeBlobShared", []any{oid, serial, []byte("data"), filepath.Join(blobDir, "x.blob"), int64(1234)}},
					{"vote", []any{int64(1234)}},
					{"new_oids", nil},
					{"new_oids", []any{int64(5)}},
				}
				c := dialCodec(t, ts.addr, letter)
				register(c)
				for _, w := range writes {
					m := c.call(w.name, w.args...)
					if cl := errorClass(m); cl != zeowire.ClassReadOnlyError {
						t.Errorf("%s: reply %q %v, want ReadOnlyError", w.name, cl, m.Args)
					}
				}
				// Sent async, as clients send them: the server cannot
				// answer, so it closes that connection.
				for _, w := range writes {
					if w.name == "vote" || w.name == "new_oids" {
						continue
					}
					a := dialCodec(t, ts.addr, letter)
					register(a)
					a.send(zeowire.KindAsync, 0, w.name, w.args...)
					a.expectClosed()
				}
				// Reads still work on the first connection.
				if m := c.call("loadBefore", oid, zeowire.MaxTid.Bytes()); errorClass(m) != "" {
					t.Errorf("loadBefore: %v", m.Args)
				}
				if got := store.LastTransaction(); got != last {
					t.Errorf("last transaction %s, was %s", got, last)
				}
				if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, orig) {
					t.Fatalf("Data.fs changed (%d bytes, was %d; %v)", len(now), len(orig), err)
				}
				if after := listTree(t, blobDir); after != blobsBefore {
					t.Errorf("blob directory written:\n%s\nwas:\n%s", after, blobsBefore)
				}
				m := c.call("pack", float64(time.Now().Unix()), true)
				switch cl := errorClass(m); {
				case setup.packRefused && cl != zeowire.ClassReadOnlyError:
					t.Errorf("pack on a read-only storage: %q %v, want ReadOnlyError", cl, m.Args)
				case !setup.packRefused && cl != "":
					t.Errorf("pack on a writable storage (%s): %v; the reference allows it", setup.name, m.Args)
				}
				if setup.packRefused {
					if now, _ := os.ReadFile(path); !bytes.Equal(now, orig) {
						t.Error("Data.fs changed by a refused pack")
					}
				}
			})
		}
	}
}

// listTree lists the files under dir with their sizes, one a line.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s %v %d\n", rel, info.Mode(), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
