package pack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/zodbctl/zodbctl/fsformat"
)

// blobLayout reads <blob_dir>/.layout (filestorage.md §13.1).
func blobLayout(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, ".layout"))
	if errors.Is(err, os.ErrNotExist) {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				return "lawn", nil
			}
		}
		return "bushy", nil
	}
	if err != nil {
		return "", err
	}
	switch l := strings.TrimSpace(string(b)); l {
	case "bushy", "lawn":
		return l, nil
	default:
		return "", fmt.Errorf("unknown blob directory layout %q", l)
	}
}

func oidDir(layout string, oid fsformat.Oid) string {
	if layout == "lawn" {
		return oid.Repr()
	}
	b := oid.Bytes()
	parts := make([]string, 8)
	for i, c := range b {
		parts[i] = fmt.Sprintf("0x%02x", c)
	}
	return filepath.Join(parts...)
}

// removeBlobs processes the removals after the swap as FileStorage does
// with <blob_dir>/.removed (pack.md §6): with keepOld the removed files
// move to <blob_dir>.old, which then also gets hard links to every blob
// file that stays, so it holds the complete pre-pack set.
func removeBlobs(dir string, removals []blobRemoval, keepOld bool) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil // no blob stored yet
	}
	layout, err := blobLayout(dir)
	if err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	old := dir + ".old"
	if keepOld {
		if err := os.MkdirAll(old, 0o700); err != nil {
			return err
		}
		if err := os.Link(filepath.Join(dir, ".layout"), filepath.Join(old, ".layout")); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	for _, rm := range removals {
		rel := oidDir(layout, rm.oid)
		if !rm.whole {
			rel = filepath.Join(rel, rm.tid.Repr()+".blob")
		}
		src := filepath.Join(dir, rel)
		if _, err := os.Lstat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if keepOld {
			dst := filepath.Join(old, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			if err := os.Rename(src, dst); err != nil {
				return err
			}
		} else if err := os.RemoveAll(src); err != nil {
			return err
		}
		// Remove the parents that became empty, never dir itself.
		for p := filepath.Dir(src); p != dir && strings.HasPrefix(p, dir+string(filepath.Separator)); p = filepath.Dir(p) {
			if err := os.Remove(p); err != nil {
				break // not empty
			}
		}
	}
	if !keepOld {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !strings.HasSuffix(p, ".blob") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(old, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err := os.Link(p, dst); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		return nil
	})
}
