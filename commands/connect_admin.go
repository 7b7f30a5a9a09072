package commands

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/client"
)

// packTime computes zeopack's pack time: now, or --time, minus --days.
func packTime(c *cli.Context, now time.Time) (time.Time, error) {
	t := now
	if s := c.String("time"); s != "" {
		var err error
		if t, err = parsePackTime(s, now); err != nil {
			return t, usageError("connect pack: invalid --time %q: %v", s, err)
		}
	}
	days := c.Float64("days")
	if days < 0 || math.IsNaN(days) || math.IsInf(days, 0) {
		return t, usageError("connect pack: --days must be a non-negative number")
	}
	return t.Add(-time.Duration(days * 86400 * float64(time.Second))), nil
}

// parsePackTime reads HH[:MM[:SS]] (today, local time, as zeopack),
// YYYY-MM-DD[THH:MM[:SS]] (local), RFC 3339, or a 16-hex-digit tid.
func parsePackTime(s string, now time.Time) (time.Time, error) {
	if len(s) == 16 && !strings.ContainsAny(s, ":-T ") {
		v, err := parseHex64(s)
		if err != nil {
			return time.Time{}, err
		}
		return zeowire.Tid(v).Time(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return time.Time{}, errors.New("expected HH[:MM[:SS]]")
	}
	var hms [3]int
	limits := [3]int{23, 59, 59}
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > limits[i] {
			return time.Time{}, errors.New("expected HH[:MM[:SS]]")
		}
		hms[i] = v
	}
	y, m, d := now.Date()
	return time.Date(y, m, d, hms[0], hms[1], hms[2], 0, now.Location()), nil
}

func runConnectPack(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	t, err := packTime(c, time.Now())
	if err != nil {
		return err
	}
	cl, err := dial(c, true, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	secs := float64(t.UnixNano()) / 1e9
	start := time.Now()
	if err := cl.Pack(c.Context, secs); err != nil {
		return connectErr(err)
	}
	took := time.Since(start)
	if c.Bool("json") {
		return newJSONLines(c.App.Writer).Write(struct {
			Address  string  `json:"address"`
			Storage  string  `json:"storage"`
			PackTime string  `json:"pack_time"`
			Duration float64 `json:"duration"`
		}{cl.Addr(), c.String("storage"), t.UTC().Format(time.RFC3339Nano), math.Round(took.Seconds()*1e6) / 1e6})
	}
	return writeOut(c.App.Writer, fmt.Sprintf("packed storage %s at %s to %s in %.3fs\n",
		c.String("storage"), cl.Addr(), t.UTC().Format("2006-01-02 15:04:05.000000 UTC"), took.Seconds()))
}

// watchSignals is the interrupt handling of watch (SIGINT, SIGTERM).
var watchSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func runConnectWatch(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, watchSignals...)
	defer stop()
	invs := make(chan client.Invalidation, 256)
	opts, err := connectOptions(c)
	if err != nil {
		return err
	}
	opts.ReadOnly = true
	if !c.IsSet("wait") && c.String("config") == "" {
		opts.Wait = time.Minute // a watcher outlives server restarts
	}
	opts.OnInvalidate = func(inv client.Invalidation) {
		select {
		case invs <- inv:
		case <-ctx.Done():
		}
	}
	cl, err := client.Connect(ctx, opts)
	if err != nil {
		return connectErr(err)
	}
	defer cl.Close()
	last := cl.RegisteredTid()
	fmt.Fprintf(c.App.ErrWriter, "zodbctl connect: watching storage %s at %s from %s; interrupt to stop\n", c.String("storage"), cl.Addr(), last)
	var jl *jsonLines
	if c.Bool("json") {
		jl = newJSONLines(c.App.Writer)
	}
	emit := func(inv client.Invalidation, catchUp bool) error {
		if inv.Tid > last {
			last = inv.Tid
		}
		if jl != nil {
			oids := make([]string, len(inv.Oids))
			for i, o := range inv.Oids {
				oids[i] = o.String()
			}
			j := struct {
				Tid     string   `json:"tid"`
				Time    string   `json:"time"`
				Oids    []string `json:"oids"`
				CatchUp bool     `json:"catch_up,omitempty"`
			}{inv.Tid.String(), tidTimeJSON(inv.Tid), oids, catchUp}
			return jl.Write(j)
		}
		b := make([]byte, 0, 64+17*len(inv.Oids))
		b = fsformat.AppendHex16(b, uint64(inv.Tid))
		b = append(b, ' ')
		b = fsformat.Tid(inv.Tid).Time().Append(b)
		if catchUp {
			b = append(b, " (missed while disconnected)"...)
		}
		for _, o := range inv.Oids {
			b = append(b, ' ')
			b = fsformat.AppendHex16(b, uint64(o))
		}
		b = append(b, '\n')
		_, err := c.App.Writer.Write(b)
		return err
	}
	count, max := 0, c.Int("count")
	for {
		select {
		case <-ctx.Done():
			return nil
		case inv := <-invs:
			if err := emit(inv, false); err != nil {
				return exitWith(ExitFailure, "zodbctl connect: %v", err)
			}
			if count++; max > 0 && count >= max {
				return nil
			}
		case <-cl.Done():
			fmt.Fprintf(c.App.ErrWriter, "zodbctl connect: %s: connection lost; reconnecting\n", cl.Addr())
			if err := cl.Reconnect(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return exitWith(exitConnLost, "zodbctl connect: %s", oneLine(err.Error()))
			}
			fmt.Fprintf(c.App.ErrWriter, "zodbctl connect: watching storage %s at %s\n", c.String("storage"), cl.Addr())
			// What was committed while we were away, in one line.
			inv, ok, err := cl.GetInvalidations(ctx, last)
			switch {
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil:
				return connectErr(err)
			case !ok:
				fmt.Fprintf(c.App.ErrWriter, "zodbctl connect: the server cannot list what changed after %s\n", last)
				last = cl.RegisteredTid()
			case inv.Tid > last:
				if err := emit(inv, true); err != nil {
					return exitWith(ExitFailure, "zodbctl connect: %v", err)
				}
			}
		}
	}
}

func runConnectCopy(c *cli.Context) error {
	pos, err := positionals(c)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("connect copy: expected one DEST.fs argument")
	}
	dest := pos[0]
	var since zeowire.Tid
	if s := c.String("since"); s != "" {
		var err error
		if since, err = parseTidArg("--since", s); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(dest); err == nil && !c.Bool("force") {
		return exitWith(ExitFailure, "zodbctl connect: copy: %s already exists (use --force to replace it)", dest)
	}
	blobDir := c.String("blob-dir")
	if blobDir != "" {
		if _, err := os.Lstat(blobDir); err == nil && !c.Bool("force") {
			return exitWith(ExitFailure, "zodbctl connect: copy: %s already exists (use --force to replace it)", blobDir)
		}
	}
	cl, err := dial(c, true, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now()
	warned := false
	noBlobDir := func() {
		if !warned {
			warned = true
			fmt.Fprintf(c.App.ErrWriter, "zodbctl connect: copy: the storage has blobs; they are not copied without --blob-dir\n")
		}
	}
	st, err := copyToFile(c.Context, cl, dest, since, blobDir, noBlobDir)
	if err != nil {
		return err
	}
	took := time.Since(start)
	if c.Bool("json") {
		return newJSONLines(c.App.Writer).Write(struct {
			Address      string  `json:"address"`
			Storage      string  `json:"storage"`
			Dest         string  `json:"dest"`
			Transactions int     `json:"transactions"`
			Records      int     `json:"records"`
			Blobs        int     `json:"blobs"`
			Size         int64   `json:"size"`
			LastTid      string  `json:"last_tid"`
			Duration     float64 `json:"duration"`
		}{cl.Addr(), c.String("storage"), dest, st.txns, st.recs, st.blobs, st.size, st.last.String(), math.Round(took.Seconds()*1e6) / 1e6})
	}
	blobs := ""
	if blobDir != "" {
		blobs = fmt.Sprintf(", %d blobs in %s", st.blobs, blobDir)
	}
	return writeOut(c.App.Writer, fmt.Sprintf("copied %d transactions (%d records, %d bytes%s) from storage %s at %s to %s in %.3fs\n",
		st.txns, st.recs, st.size, blobs, c.String("storage"), cl.Addr(), dest, took.Seconds()))
}

// compactIndex is fsformat.Index on fsindex's compact map (a few bytes an
// oid instead of a Go map's ~40), so a copy's memory stays small.
type compactIndex struct{ x *fsindex.Index }

func (c compactIndex) Get(oid fsformat.Oid) (int64, bool) {
	p, ok := c.x.Get(uint64(oid))
	return int64(p), ok
}

func (c compactIndex) Set(oid fsformat.Oid, pos int64) { c.x.Set(uint64(oid), uint64(pos)) }

type copyStats struct {
	txns, recs, blobs int
	size              int64
	last              zeowire.Tid
}

// copyToFile writes the server's transactions into a temporary file next
// to dest, fsyncs and verifies it, then renames it over dest and fsyncs the
// directory: dest is either the complete verified copy or untouched.
// (renameio cannot be used: fsformat.Appender creates its own file.) With
// blobDir, the blob files go to a temporary directory beside it (bushy
// layout), renamed into place just before dest.
func copyToFile(ctx context.Context, cl *client.Client, dest string, since zeowire.Tid, blobDir string, noBlobDir func()) (st copyStats, err error) {
	var tmpBlobs string
	if blobDir != "" {
		if tmpBlobs, err = os.MkdirTemp(filepath.Dir(blobDir), "."+filepath.Base(blobDir)+".tmp-*"); err != nil {
			return st, exitWith(ExitFailure, "zodbctl connect: copy: %v", err)
		}
		defer func() {
			if err != nil {
				os.RemoveAll(tmpBlobs)
			}
		}()
		if err = os.WriteFile(filepath.Join(tmpBlobs, ".layout"), []byte("bushy"), 0o644); err != nil {
			return st, exitWith(ExitFailure, "zodbctl connect: copy: %v", err)
		}
	}
	dir := filepath.Dir(dest)
	tmpf, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return st, exitWith(ExitFailure, "zodbctl connect: copy: %v", err)
	}
	tmp := tmpf.Name()
	tmpf.Close()
	os.Remove(tmp) // fsformat.Create refuses an existing file
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	idx := compactIndex{fsindex.New()}
	app, err := fsformat.Create(tmp, idx)
	if err != nil {
		return st, exitWith(ExitFailure, "zodbctl connect: copy: %v", err)
	}
	defer app.Close()
	app.Durable = false // one fsync at the end is enough for a copy
	fail := func(e error) (copyStats, error) {
		return st, exitWith(ExitFailure, "zodbctl connect: copy to %s: %v", dest, e)
	}
	var hdr [fsformat.DataHeaderLen]byte
	// backPos finds the record of oid written by tid in the copy, following
	// the prev chain from the oid's latest record, as FileStorage's
	// restore does for data_txn.
	backPos := func(oid zeowire.Oid, tid zeowire.Tid) (int64, bool) {
		pos, ok := idx.Get(fsformat.Oid(oid))
		for ok && pos > 0 {
			if _, err := app.File().ReadAt(hdr[:], pos); err != nil {
				return 0, false
			}
			h := fsformat.ParseDataHeader(hdr[:])
			if h.Tid == fsformat.Tid(tid) {
				return pos, true
			}
			if h.Tid < fsformat.Tid(tid) {
				return 0, false
			}
			pos = h.Prev
		}
		return 0, false
	}
	for txn, err := range cl.Transactions(ctx, since, 0) {
		if err != nil {
			return st, connectErr(err)
		}
		var ext []byte
		if len(txn.Extension) > 0 {
			if ext, err = pickle.Marshal(txn.Extension, 3); err != nil {
				return fail(fmt.Errorf("transaction %s: extension: %w", txn.Tid, err))
			}
		}
		status := byte(' ')
		if len(txn.Status) == 1 {
			status = txn.Status[0]
		}
		if _, err := app.Begin(fsformat.TxnMeta{Tid: fsformat.Tid(txn.Tid), Status: status, User: txn.User,
			Description: txn.Description, Extension: ext}); err != nil {
			return fail(fmt.Errorf("transaction %s: %w", txn.Tid, err))
		}
		for _, r := range txn.Records {
			var err error
			if r.DataTxn != 0 {
				if pos, ok := backPos(r.Oid, r.DataTxn); ok {
					_, err = app.StoreBackpointer(fsformat.Oid(r.Oid), pos)
					if err != nil {
						return fail(fmt.Errorf("transaction %s: oid %s: %w", txn.Tid, r.Oid, err))
					}
					st.recs++
					continue
				}
			}
			if r.Data == nil {
				_, err = app.Delete(fsformat.Oid(r.Oid))
			} else {
				_, err = app.Store(fsformat.Oid(r.Oid), r.Data)
			}
			if err == nil && r.Data != nil && isBlobRecord(r.Data) {
				if tmpBlobs == "" {
					noBlobDir()
				} else {
					path := zeowire.BushyBlobPath(tmpBlobs, r.Oid, r.Tid)
					if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
						if err = cl.FetchBlob(ctx, r.Oid, r.Tid, path); err != nil {
							return st, connectErr(err)
						}
						st.blobs++
					}
				}
			}
			if err != nil {
				return fail(fmt.Errorf("transaction %s: oid %s: %w", txn.Tid, r.Oid, err))
			}
			st.recs++
		}
		if _, err := app.Commit(); err != nil {
			return fail(fmt.Errorf("transaction %s: %w", txn.Tid, err))
		}
		st.txns++
		st.last = txn.Tid
	}
	if err := app.Sync(); err != nil {
		return fail(err)
	}
	st.size = app.Pos()
	if err := app.Close(); err != nil {
		return fail(err)
	}
	if err := fsformat.Verify(tmp, fsformat.VerifyOptions{}); err != nil {
		return fail(fmt.Errorf("verifying the copy: %w", err))
	}
	if tmpBlobs != "" {
		if err := syncTree(tmpBlobs); err != nil {
			return fail(err)
		}
		if _, err := os.Lstat(blobDir); err == nil {
			// --force: the old tree goes only now that the new one is complete.
			if err := os.RemoveAll(blobDir); err != nil {
				return fail(err)
			}
		}
		if err := os.Rename(tmpBlobs, blobDir); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fail(err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return st, nil
}

// isBlobRecord tells whether a record is a ZODB.blob.Blob (whose content is
// a file beside the storage, fetched with sendBlob).
func isBlobRecord(data []byte) bool { return recordClass(data) == "ZODB.blob.Blob" }

// syncTree fsyncs every file and directory under root.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
