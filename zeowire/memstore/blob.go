package memstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/zodbctl/zodbctl/zeowire"
)

// BlobStorageInterfaces are the get_info interfaces of a FileStorage with
// a blob-dir.
var BlobStorageInterfaces = append([][2]string{
	{"ZODB.interfaces", "IBlobStorageRestoreable"},
	{"ZODB.interfaces", "IBlobStorage"},
}, FileStorageInterfaces...)

// SetBlobDir gives the storage a blob directory (bushy layout, committed
// blobs as files, uploads in its tmp folder), creating it if needed.
func (s *Store) SetBlobDir(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return err
	}
	layout := filepath.Join(dir, ".layout")
	if b, err := os.ReadFile(layout); err == nil {
		if string(b) != "bushy" {
			return fmt.Errorf("blob directory %s has layout %q, not bushy", dir, b)
		}
	} else if err := os.WriteFile(layout, []byte("bushy"), 0o644); err != nil {
		return err
	}
	s.mu.Lock()
	s.blobDir = dir
	s.mu.Unlock()
	return nil
}

var (
	_ zeowire.BlobStorage = (*Store)(nil)
	_ zeowire.BlobTxn     = (*txn)(nil)
)

// BlobDir implements zeowire.BlobStorage.
func (s *Store) BlobDir() string { return s.blobDir }

// BlobTempDir implements zeowire.BlobStorage.
func (s *Store) BlobTempDir() string { return filepath.Join(s.blobDir, "tmp") }

// BlobOidDir implements zeowire.BlobStorage.
func (s *Store) BlobOidDir(oid zeowire.Oid) string { return zeowire.BushyOidDir(s.blobDir, oid) }

// OpenBlob implements zeowire.BlobStorage.
func (s *Store) OpenBlob(_ context.Context, oid zeowire.Oid, serial zeowire.Tid) (io.ReadCloser, error) {
	if s.blobDir == "" {
		return nil, zeowire.ErrNotSupported
	}
	path := zeowire.BushyBlobPath(s.blobDir, oid, serial)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &zeowire.POSKeyError{Oid: oid, Args: zeowire.Tuple{"No blob file at " + path, oid.Bytes(), serial.Bytes()}}
	}
	return f, err
}

// StoreBlob implements zeowire.BlobTxn: the record is stored like any
// other; the file is moved into the blob tree at Finish.
func (t *txn) StoreBlob(oid zeowire.Oid, serial zeowire.Tid, data []byte, path string) error {
	if t.s.blobDir == "" {
		return errors.New("memstore: no blob directory")
	}
	if err := t.Store(oid, serial, data); err != nil {
		return err
	}
	if t.blobs == nil {
		t.blobs = map[zeowire.Oid]string{}
	}
	t.blobs[oid] = path
	return nil
}

// commitBlobs moves the transaction's blob files into place.
func (t *txn) commitBlobs() error {
	for oid, path := range t.blobs {
		dst := zeowire.BushyBlobPath(t.s.blobDir, oid, t.meta.Tid)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err := os.Rename(path, dst); err != nil {
			return err
		}
		os.Chmod(dst, 0o444)
	}
	return nil
}
