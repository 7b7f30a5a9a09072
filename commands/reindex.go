package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
)

func init() {
	register(&cli.Command{
		Name:      "reindex",
		Usage:     "rebuild FILE.index (Data.fs.index) from a full scan of FILE",
		ArgsUsage: "FILE",
		Description: `Scans the whole Data.fs as FileStorage does when it opens a file without an
index, and writes FILE.index exactly as FileStorage writes it on close: the
same bytes, so ZODB opens the storage with it instead of scanning again.

The index is written aside, synced and renamed over FILE.index. The storage
lock FILE.lock is held meanwhile; a file locked by a running server is
refused. The Data.fs itself is never modified: where FileStorage would
truncate a damaged tail, its warning is printed and the index stops at the
last complete transaction.

Prints one summary line (--json: one object {"index", "objects", "pos"});
a progress bar goes to stderr when it is a terminal.

Example:
  zodbctl reindex var/filestorage/Data.fs`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the summary as a JSON object"},
		},
		Action: runReindex,
	})
}

func runReindex(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("reindex: expected one FILE argument")
	}
	path := c.Args().First()
	stderr := c.App.ErrWriter

	// Open first: a missing file must not leave a stray FILE.lock behind.
	f, err := os.Open(path)
	if err != nil {
		return exitWith(ExitFailure, "zodbctl reindex: %v", err)
	}
	defer f.Close()
	unlock, err := lockStorage(path)
	if err != nil {
		return exitWith(ExitFailure, "zodbctl reindex: %v", err)
	}
	defer unlock()
	st, err := f.Stat()
	if err != nil {
		return exitWith(ExitFailure, "zodbctl reindex: %v", err)
	}

	if st.Size() == 0 {
		// FileStorage would write the header first; reindex never writes
		// the Data.fs, and an index of a file with no header means nothing.
		return exitWith(ExitFailure, "zodbctl reindex: %s: empty file (no FileStorage header), nothing to index", path)
	}
	idx := &scanIndex{Index: fsindex.New()}
	if ef, ok := stderr.(*os.File); ok && term.IsTerminal(int(ef.Fd())) && st.Size() > 0 {
		idx.bar = progressbar.NewOptions64(st.Size(),
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("reindex"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	// FileStorage's scan warnings (it logs them), one line each.
	warn := func(msg string) { fmt.Fprintf(stderr, "zodbctl reindex: %s\n", msg) }
	res, err := fsformat.ScanIndex(f, path, idx, warn)
	if idx.bar != nil {
		idx.bar.Finish()
	}
	if err != nil {
		return exitWith(ExitFailure, "zodbctl reindex: %v", err)
	}
	if res.Magic == fsformat.MagicFS21 {
		// FileStorage on Python 3 refuses these files, so an index for
		// them would never be used.
		return exitWith(ExitFailure, "zodbctl reindex: %s: Python 2 (FS21) file, which FileStorage on Python 3 refuses (FileStorageFormatError)", path)
	}
	if res.TailWarning != "" {
		warn(res.TailWarning)
	}
	if err := fsindex.Write(path+".index", idx.Index, uint64(res.End)); err != nil {
		return exitWith(ExitFailure, "zodbctl reindex: %v", err)
	}
	if c.Bool("json") {
		out, _ := json.Marshal(struct {
			Index   string `json:"index"`
			Objects int    `json:"objects"`
			Pos     int64  `json:"pos"`
		}{path + ".index", idx.Len(), res.End})
		fmt.Fprintf(c.App.Writer, "%s\n", out)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "%s.index: %d objects, data up to %d\n", path, idx.Len(), res.End)
	return nil
}

// scanIndex adapts fsindex.Index (plain uint64s, a leaf package) to the
// fsformat.Index the scanner fills, and drives the progress bar from the
// positions it is given (they grow as the scan proceeds).
type scanIndex struct {
	*fsindex.Index
	bar   *progressbar.ProgressBar
	shown int64
}

func (s *scanIndex) Get(oid fsformat.Oid) (int64, bool) {
	p, ok := s.Index.Get(uint64(oid))
	return int64(p), ok
}

func (s *scanIndex) Set(oid fsformat.Oid, pos int64) {
	s.Index.Set(uint64(oid), uint64(pos))
	if s.bar != nil && pos-s.shown > 1<<20 {
		s.shown = pos
		s.bar.Set64(pos)
	}
}

// lockStorage takes FileStorage's lock on path+".lock" (fsformat.LockStorage)
// for a command that writes the storage's files (reindex, pack). The message
// of a lock held elsewhere says why it matters.
func lockStorage(path string) (unlock func(), err error) {
	l, err := fsformat.LockStorage(path)
	if err != nil {
		var le *fsformat.LockError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("%s is locked by another process (a running server?)", le.Path)
		}
		return nil, err
	}
	return func() { l.Unlock() }, nil
}
