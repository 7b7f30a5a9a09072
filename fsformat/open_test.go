package fsformat

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// openReport is a parsed *.open-ro.txt / *.open-rw.txt fixture: what Python's
// FileStorage did when opening a (damaged) file.
type openReport struct {
	ok        bool
	exception string // message after "ExceptionName: "
	logs      []string
	oids      int
	lastTid   string
	end       int64
	maxOid    string
	sizeAfter int64 // rw: size of the file after close
	tr0       int64 // rw: size of .tr0 (-1 if none)
}

func parseOpenReport(t *testing.T, path string) openReport {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep := openReport{tr0: -1, sizeAfter: -1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	section := ""
	base := filepath.Base(strings.TrimSuffix(strings.TrimSuffix(path, ".open-ro.txt"), ".open-rw.txt"))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "open: ok":
			rep.ok = true
		case strings.HasPrefix(l, "exception: "):
			_, msg, _ := strings.Cut(strings.TrimPrefix(l, "exception: "), ": ")
			rep.exception = msg
		case l == "log while opening:":
			section = "log"
		case l == "after close:":
			section = "after"
		case strings.HasPrefix(l, "oids in index: "):
			rep.oids, _ = strconv.Atoi(strings.TrimPrefix(l, "oids in index: "))
		case strings.HasPrefix(l, "last transaction: "):
			rep.lastTid = strings.TrimPrefix(l, "last transaction: ")
		case strings.HasPrefix(l, "end of data (_pos): "):
			rep.end, _ = strconv.ParseInt(strings.TrimPrefix(l, "end of data (_pos): "), 10, 64)
		case strings.HasPrefix(l, "highest oid: "):
			rep.maxOid = strings.TrimPrefix(l, "highest oid: ")
		case strings.HasPrefix(l, "  ") && section == "log":
			if s := strings.TrimSpace(l); s != "(none)" {
				_, msg, _ := strings.Cut(s, "ZODB.FileStorage: ")
				rep.logs = append(rep.logs, msg)
			}
		case strings.HasPrefix(l, "  ") && section == "after":
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case base:
				rep.sizeAfter = n
			case base + ".tr0":
				rep.tr0 = n
			}
		default:
			section = map[bool]string{true: section, false: ""}[strings.HasPrefix(l, "  ")]
		}
	}
	return rep
}

// TestOpenReports compares ScanIndex (read-only) and OpenAppender
// (read-write) with what FileStorage did on every damaged fixture.
func TestOpenReports(t *testing.T) {
	reports, _ := filepath.Glob(filepath.Join(fixtures, "*", "*.open-r?.txt"))
	more, _ := filepath.Glob(filepath.Join(fixtures, "*.open-r?.txt"))
	reports = append(reports, more...)
	if len(reports) == 0 {
		t.Fatal("no open reports")
	}
	for _, rp := range reports {
		rw := strings.HasSuffix(rp, ".open-rw.txt")
		src := strings.TrimSuffix(strings.TrimSuffix(rp, ".open-ro.txt"), ".open-rw.txt")
		t.Run(filepath.Base(rp), func(t *testing.T) {
			want := parseOpenReport(t, rp)
			content, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.HasPrefix(content, MagicFS21[:]) && !rw {
				t.Skip("zodbctl reads FS21 files read-only (Python 3 refuses them)")
			}
			name := filepath.Base(src)
			dir := t.TempDir()
			t.Chdir(dir) // messages carry the bare name, as in the reports
			if err := os.WriteFile(name, content, 0o644); err != nil {
				t.Fatal(err)
			}
			var logs []string
			warn := func(s string) { logs = append(logs, s) }
			idx := MapIndex{}
			var res ScanResult
			if rw {
				var a *Appender
				a, err = OpenAppender(name, idx, warn)
				if err == nil {
					res.End, res.LastTid = a.Pos(), a.LastTid()
					for oid := range idx {
						res.MaxOid = max(res.MaxOid, oid)
					}
					a.Close()
				}
			} else {
				f, ferr := os.Open(name)
				if ferr != nil {
					t.Fatal(ferr)
				}
				res, err = ScanIndex(f, name, idx, warn)
				f.Close()
			}
			if !want.ok {
				var fe *FormatError
				if err == nil {
					t.Fatalf("opened; Python failed with %q", want.exception)
				}
				if errors.As(err, &fe) && want.exception != name && fe.Msg != want.exception {
					t.Errorf("error %q, want %q", fe.Msg, want.exception)
				}
				return
			}
			if err != nil {
				t.Fatalf("open failed: %v", err)
			}
			if strings.Join(logs, "\n") != strings.Join(want.logs, "\n") {
				t.Errorf("logs\n got %q\nwant %q", logs, want.logs)
			}
			if len(idx) != want.oids || res.End != want.end || res.LastTid.Repr() != want.lastTid || res.MaxOid.Repr() != want.maxOid {
				t.Errorf("got %d oids, end %d, last tid %s, max oid %s; want %d, %d, %s, %s",
					len(idx), res.End, res.LastTid.Repr(), res.MaxOid.Repr(), want.oids, want.end, want.lastTid, want.maxOid)
			}
			if rw {
				st, _ := os.Stat(name)
				if st.Size() != want.sizeAfter {
					t.Errorf("size after open %d, want %d", st.Size(), want.sizeAfter)
				}
				tr0 := int64(-1)
				if st, err := os.Stat(name + ".tr0"); err == nil {
					tr0 = st.Size()
				}
				if tr0 != want.tr0 {
					t.Errorf(".tr0 size %d, want %d", tr0, want.tr0)
				}
			}
		})
	}
}
