package fsstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zodbctl/zodbctl/zeowire"
)

// TestDamagedOpen opens every damaged fixture read-write and read-only and
// compares with what Python's FileStorage did (testdata/fs/damaged/
// *.open-rw.txt, *.open-ro.txt): success or the exception message, the
// messages logged, index size, last tid, end of data, highest oid, the
// load check, and the files left after close (truncation, .trN, index).
func TestDamagedOpen(t *testing.T) {
	reports, _ := filepath.Glob("../../testdata/fs/damaged/*.open-r[ow].txt")
	if len(reports) < 20 {
		t.Fatalf("only %d open reports", len(reports))
	}
	for _, rep := range reports {
		rep, _ := filepath.Abs(rep)
		t.Run(filepath.Base(rep), func(t *testing.T) {
			want, _ := os.ReadFile(rep)
			name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(rep), ".open-rw.txt"), ".open-ro.txt")
			src, _ := os.ReadFile(filepath.Join(filepath.Dir(rep), name))
			dir := t.TempDir()
			t.Chdir(dir)
			os.WriteFile(name, src, 0o644)
			ro := strings.HasSuffix(rep, ".open-ro.txt")
			have := describeOpen(t, name, ro, int64(len(src)))
			if have != normalizeReport(string(want)) {
				t.Errorf("have:\n%s\nwant:\n%s", have, normalizeReport(string(want)))
			}
		})
	}
}

var reLogLine = regexp.MustCompile(`^  (CRITICAL|ERROR|WARNING|INFO) ZODB\.FileStorage: (.*)$`)

// normalizeReport keeps the lines describeOpen produces: log levels and
// the .tmp file (FileStorage's scratch file, which fsstore does not use)
// and the fstest line are dropped.
func normalizeReport(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "fstest after:"), strings.Contains(l, ".tmp "), strings.HasPrefix(l, "  oid "):
			continue
		case strings.HasPrefix(l, "exception: "):
			// Keep the message, not the class.
			_, msg, _ := strings.Cut(strings.TrimPrefix(l, "exception: "), ": ")
			l = "exception: " + msg
		}
		if m := reLogLine.FindStringSubmatch(l); m != nil {
			l = "  " + m[2]
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

func describeOpen(t *testing.T, name string, ro bool, size int64) string {
	var b strings.Builder
	mode := "read-write"
	if ro {
		mode = "read-only"
	}
	fmt.Fprintf(&b, "mode: %s\nfile: %s %d bytes\n", mode, name, size)
	var logs []string
	st, err := Open(name, Options{ReadOnly: ro, Warn: func(m string) { logs = append(logs, m) }})
	var fsMsg *fsMessageError
	if err != nil {
		msg := err.Error()
		if !errors.As(err, &fsMsg) && strings.HasPrefix(msg, name+": ") {
			// FileStorageFormatError(name) says only the name (FS21
			// magic); fsstore says why after it. Compare the name.
			msg = name
		}
		fmt.Fprintf(&b, "open: FAILED\nexception: %s\n", msg)
	} else {
		b.WriteString("open: ok\n")
	}
	b.WriteString("log while opening:\n")
	if len(logs) == 0 && fsMsg == nil {
		b.WriteString("  (none)\n")
	}
	for _, l := range logs {
		b.WriteString("  " + l + "\n")
	}
	if fsMsg != nil {
		// FileStorage logs its fatal message too.
		b.WriteString("  " + err.Error() + "\n")
	}
	if err == nil {
		info := st.Info()
		fmt.Fprintf(&b, "oids in index: %d\n", info.Length)
		fmt.Fprintf(&b, "last transaction: 0x%016x\n", uint64(st.LastTransaction()))
		fmt.Fprintf(&b, "end of data (_pos): %d\n", info.Size)
		loaded, missing, failed := 0, 0, 0
		st.mu.RLock()
		var oids []zeowire.Oid
		for o := range st.idx.All() {
			oids = append(oids, zeowire.Oid(o))
		}
		st.mu.RUnlock()
		for _, o := range oids {
			_, ok, err := st.LoadBefore(context.Background(), o, zeowire.Tid(1<<63-1))
			var pk *zeowire.POSKeyError
			switch {
			case errors.As(err, &pk):
				missing++
			case err != nil || !ok:
				failed++
			default:
				loaded++
			}
		}
		next, _ := st.NewOids(1)
		fmt.Fprintf(&b, "highest oid: 0x%x\n", uint64(next[0])-1)
		fmt.Fprintf(&b, "load check: %d loaded, %d without current data (POSKeyError), %d failed\n", loaded, missing, failed)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if ro {
		return b.String() // nothing written, nothing to list
	}
	b.WriteString("after close:\n")
	entries, _ := os.ReadDir(".")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		fi, _ := e.Info()
		line := fmt.Sprintf("  %s %d bytes", e.Name(), fi.Size())
		switch {
		case e.Name() != name:
			line += " (new)"
		case fi.Size() != size:
			line += " (was " + strconv.FormatInt(size, 10) + ")"
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
