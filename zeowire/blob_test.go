package zeowire_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

func blobServer(t *testing.T) (*testServer, string) {
	dir := t.TempDir()
	ts := startServer(t, func(s *zeowire.Server) {
		st := memstore.New("Data1.fs")
		if err := st.SetBlobDir(dir); err != nil {
			t.Fatal(err)
		}
		s.Storages = map[string]zeowire.Storage{"1": st}
	})
	return ts, dir
}

// fetchBlob collects a sendBlob stream.
func fetchBlob(t *testing.T, c *client, oid []byte, serial zeowire.Tid) ([]byte, error) {
	t.Helper()
	if _, err := c.Call(ctx(t), "sendBlob", oid, serial.Bytes()); err != nil {
		return nil, err
	}
	var got []byte
	expectAsync(t, c, "receiveBlobStart")
	for {
		m := <-c.async
		switch m.Name {
		case "receiveBlobChunk":
			got = append(got, m.Args.(zeowire.Tuple)[2].([]byte)...)
		case "receiveBlobStop":
			return got, nil
		default:
			t.Fatalf("%s inside a blob stream", m.Name)
		}
	}
}

func TestBlobUploadAndDownload(t *testing.T) {
	ts, dir := blobServer(t)
	a := dial(t, ts.addr, "1")
	b := dial(t, ts.addr, "1")
	cx := ctx(t)
	big := bytes.Repeat([]byte("0123456789"), 13000) // 130000 bytes: 3 chunks
	record := []byte("\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.")
	a.Async("tpc_begin", 1, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storea", oidb(1), z64, record, 1)
	a.Async("storeBlobStart")
	for i := 0; i < len(big); i += 50000 {
		a.Async("storeBlobChunk", big[i:min(i+50000, len(big))])
	}
	a.Async("storeBlobEnd", oidb(1), z64, record, 1)
	if _, err := a.Call(cx, "vote", 1); err != nil {
		t.Fatal(err)
	}
	r, err := a.Call(cx, "tpc_finish", 1)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := zeowire.AsTid(r)
	// The invalidation lists the oid twice, as the reference does.
	m := expectAsync(t, b, "invalidateTransaction")
	if want := (zeowire.Tuple{tid.Bytes(), zeowire.Tuple{oidb(1), oidb(1)}}); !zeowire.Equal(m.Args, want) {
		t.Errorf("invalidation %s", zeowire.Repr(m.Args))
	}
	got, err := fetchBlob(t, b, oidb(1), tid)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("sendBlob: %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(zeowire.BushyBlobPath(dir, 1, tid)); err != nil {
		t.Errorf("committed blob file: %v", err)
	}
	// A missing blob: POSKeyError (message, oid, serial) and no stream.
	_, err = b.Call(cx, "sendBlob", oidb(1), z64)
	var pk *zeowire.POSKeyError
	if !errors.As(err, &pk) || len(pk.Args) != 3 {
		t.Errorf("missing blob: %v", err)
	}
	// An aborted upload leaves no file behind.
	a.Async("tpc_begin", 2, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storeBlobStart")
	a.Async("storeBlobChunk", []byte("discarded"))
	a.Async("storeBlobEnd", oidb(2), z64, record, 2)
	if _, err := a.Call(cx, "tpc_abort", 2); err != nil {
		t.Fatal(err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("files left in tmp after abort: %v", tmp)
	}
}

func TestBlobShared(t *testing.T) {
	ts, dir := blobServer(t)
	a := dial(t, ts.addr, "1")
	cx := ctx(t)
	record := []byte("\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.")
	oidDir := zeowire.BushyOidDir(dir, 5)
	if err := os.MkdirAll(oidDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(oidDir, "abc.tmp"), []byte("shared"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Async("tpc_begin", 1, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storeBlobShared", oidb(5), z64, record, "abc.tmp", 1)
	if _, err := a.Call(cx, "vote", 1); err != nil {
		t.Fatal(err)
	}
	r, err := a.Call(cx, "tpc_finish", 1)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := zeowire.AsTid(r)
	if b, err := os.ReadFile(zeowire.BushyBlobPath(dir, 5, tid)); err != nil || string(b) != "shared" {
		t.Errorf("shared blob: %q %v", b, err)
	}
	// A path instead of a bare name is an attack: the connection closes.
	a.Async("tpc_begin", 2, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storeBlobShared", oidb(5), tid.Bytes(), record, "../../../../etc/passwd.tmp", 2)
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after a bad blob file name")
	}
}

func TestBlobsUnsupported(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts.addr, "1")
	_, err := a.Call(ctx(t), "sendBlob", oidb(1), z64)
	var re *zeowire.RemoteError
	if !errors.As(err, &re) || re.Class != zeowire.ClassAttributeError {
		t.Errorf("sendBlob without blobs: %v", err)
	}
	a.Async("storeBlobStart")
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("storeBlobStart without blob support did not close the connection")
	}
}
