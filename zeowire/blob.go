package zeowire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// BlobChunkSize is the size of the receiveBlobChunk pieces (as the
// reference sends them).
const BlobChunkSize = 59000

// BlobStorage is implemented by storages with a blob directory.
type BlobStorage interface {
	// BlobDir is the root of the blob tree; "" means this storage has no
	// blob directory after all (blob calls then fail as without blobs).
	BlobDir() string
	// BlobTempDir is where the server writes uploads; it must be on the
	// file system of the blob tree so that committing a blob is a rename.
	BlobTempDir() string
	// BlobOidDir is the directory of oid in the blob tree; clients with a
	// shared blob directory place their files there (storeBlobShared).
	BlobOidDir(oid Oid) string
	// OpenBlob opens the committed blob of oid at serial, or returns a
	// *POSKeyError.
	OpenBlob(ctx context.Context, oid Oid, serial Tid) (io.ReadCloser, error)
}

// BlobTxn is implemented by the transactions of a BlobStorage.
type BlobTxn interface {
	// StoreBlob stores data for oid with the blob file at path; the storage
	// takes the file (moves it into place at Finish, removes it at Abort).
	StoreBlob(oid Oid, serial Tid, data []byte, path string) error
}

// BushyBlobPath is the path of a committed blob in the "bushy" layout of
// ZODB blob directories: one 0xNN directory per oid byte, then
// 0x<tid>.blob.
func BushyBlobPath(root string, oid Oid, tid Tid) string {
	return filepath.Join(BushyOidDir(root, oid), fmt.Sprintf("0x%016x.blob", uint64(tid)))
}

// BushyOidDir is the directory of oid in the bushy layout.
func BushyOidDir(root string, oid Oid) string {
	parts := make([]string, 1, 9)
	parts[0] = root
	for i := 7; i >= 0; i-- {
		parts = append(parts, fmt.Sprintf("0x%02x", byte(uint64(oid)>>(8*i))))
	}
	return filepath.Join(parts...)
}

// blobUpload is the upload in progress on a connection (chunks carry no
// oid, so there is at most one).
type blobUpload struct {
	f *os.File
}

func (b *blobUpload) discard() {
	if b != nil && b.f != nil {
		b.f.Close()
		os.Remove(b.f.Name())
	}
}

func (c *serverConn) blobStorage() (BlobStorage, error) {
	bs, ok := c.st.storage.(BlobStorage)
	if !ok || bs.BlobDir() == "" {
		return nil, errors.New("this storage has no blob directory")
	}
	return bs, nil
}

func (c *serverConn) storeBlobStart(context.Context, *Message, []any) (any, error) {
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	bs, err := c.blobStorage()
	if err != nil {
		return nil, err
	}
	c.blob.discard()
	c.blob = nil
	dir := bs.BlobTempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "upload-*.tmp")
	if err != nil {
		return nil, err
	}
	c.blob = &blobUpload{f: f}
	return nil, nil
}

func (c *serverConn) storeBlobChunk(_ context.Context, _ *Message, a []any) (any, error) {
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	chunk, ok := a[0].([]byte)
	if !ok {
		return nil, &ArgError{Method: "storeBlobChunk", Msg: "chunk must be bytes, got " + describe(a[0])}
	}
	if c.blob == nil {
		return nil, errors.New("storeBlobChunk without storeBlobStart")
	}
	_, err := c.blob.f.Write(chunk)
	return nil, err
}

func (c *serverConn) storeBlobEnd(_ context.Context, _ *Message, a []any) (any, error) {
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	if c.blob == nil {
		return nil, errors.New("storeBlobEnd without storeBlobStart")
	}
	up := c.blob
	c.blob = nil
	path := up.f.Name()
	if err := up.f.Close(); err != nil {
		os.Remove(path)
		return nil, err
	}
	o, err := blobOp("storeBlobEnd", a[0], a[1], a[2])
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	o.blobPath = path
	if err := c.queue(a[3], o); err != nil {
		os.Remove(path)
		return nil, err
	}
	return nil, nil
}

func (c *serverConn) storeBlobShared(_ context.Context, _ *Message, a []any) (any, error) {
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	bs, err := c.blobStorage()
	if err != nil {
		return nil, err
	}
	o, err := blobOp("storeBlobShared", a[0], a[1], a[2])
	if err != nil {
		return nil, err
	}
	name, ok := a[3].(string)
	// A bare file name ending in .tmp or .tmp plus one character: anything
	// else could make the server move an arbitrary file (the reference
	// logs it as an attack).
	if !ok || name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." ||
		!(strings.HasSuffix(name, ".tmp") || (len(name) > 4 && strings.HasSuffix(name[:len(name)-1], ".tmp"))) {
		return nil, &RemoteError{Class: ClassValueError, Args: Tuple{fmt.Sprintf("Invalid blob filename: %s", Repr(a[3]))}}
	}
	o.blobPath = filepath.Join(bs.BlobOidDir(o.oid), name)
	return nil, c.queue(a[4], o)
}

func blobOp(method string, oidV, serialV, dataV any) (op, error) {
	oid, err := argOid(method, oidV)
	if err != nil {
		return op{}, err
	}
	serial, err := argTid(method, serialV)
	if err != nil {
		return op{}, err
	}
	data, ok := dataV.([]byte)
	if !ok {
		return op{}, &ArgError{Method: method, Msg: "data must be bytes, got " + describe(dataV)}
	}
	return op{kind: opStoreBlob, oid: oid, serial: serial, data: data}, nil
}

// sendBlob streams a committed blob as receiveBlobStart, receiveBlobChunk…,
// receiveBlobStop, then answers None. Messages for this connection from
// other goroutines (invalidations) are held back during the stream so that
// it is contiguous, as with the single-threaded reference.
func (c *serverConn) sendBlob(ctx context.Context, _ *Message, a []any) (any, error) {
	bs, ok := c.st.storage.(BlobStorage)
	if !ok || bs.BlobDir() == "" {
		return nil, attributeError("sendBlob")
	}
	oid, err := argOid("sendBlob", a[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("sendBlob", a[1])
	if err != nil {
		return nil, err
	}
	r, err := bs.OpenBlob(ctx, oid, serial)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	c.holdOthers(true)
	defer c.holdOthers(false)
	ob, sb := oid.Bytes(), serial.Bytes()
	if err := c.sendOwn("receiveBlobStart", Tuple{ob, sb}); err != nil {
		return nil, err
	}
	for {
		buf := make([]byte, BlobChunkSize)
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if err := c.sendOwn("receiveBlobChunk", Tuple{ob, sb, buf[:n]}); err != nil {
				return nil, err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			// The stream is broken; the client cannot be told in band.
			c.logger().Error("reading blob failed; closing", "oid", oid, "serial", serial, "error", err)
			return nil, errCloseConn
		}
	}
	if err := c.sendOwn("receiveBlobStop", Tuple{ob, sb}); err != nil {
		return nil, err
	}
	return nil, nil
}
