// Command diskfull is the client half of bench/diskfull.sh: it commits to a
// zodbctl serve whose Data.fs lives on a nearly full file system until the
// server refuses (disk full), waits while the script frees space, commits
// again, and finally loads every acknowledged revision back. It exits 0
// only if the server kept serving, recovered once space was back, and lost
// nothing it acknowledged.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/zodbctl/zodbctl/bench/internal/zeoload"
	"github.com/zodbctl/zodbctl/zeowire"
)

type acked struct {
	oid  zeowire.Oid
	tid  zeowire.Tid
	data []byte
}

func main() {
	addr := flag.String("addr", "", "server address")
	size := flag.Int("size", 64<<10, "bytes per object")
	perTxn := flag.Int("objects", 4, "objects per transaction")
	flag.Parse()
	if err := run(*addr, *size, *perTxn); err != nil {
		fmt.Fprintln(os.Stderr, "diskfull:", err)
		os.Exit(1)
	}
}

func run(addr string, size, perTxn int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := zeoload.Dial(ctx, addr, "1", false)
	if err != nil {
		return err
	}
	defer c.Close()
	var all []acked
	serials := map[zeowire.Oid]zeowire.Tid{}
	n := 0
	commit := func() error {
		n++
		oids, err := zeoload.NewOids(ctx, c, perTxn)
		if err != nil {
			return err
		}
		data := bytes.Repeat([]byte{byte('a' + n%26)}, size)
		copy(data, fmt.Sprintf("txn %d", n))
		tid, err := zeoload.Commit(ctx, c, "diskfull", oids, make([]zeowire.Tid, len(oids)), data)
		if err != nil {
			return err
		}
		for _, oid := range oids {
			all = append(all, acked{oid, tid, data})
			serials[oid] = tid
		}
		return nil
	}

	// Phase 1: fill the disk. Three refusals in a row mean it is full.
	okBefore, refused := 0, 0
	var firstErr error
	for refused < 3 {
		if err := commit(); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			refused++
			continue
		}
		if refused > 0 {
			return fmt.Errorf("a commit succeeded after a refusal before space was freed")
		}
		okBefore++
		if okBefore > 100000 {
			return fmt.Errorf("the disk never filled")
		}
	}
	fmt.Printf("phase 1: %d commits acknowledged, then refused: %v\n", okBefore, firstErr)

	// The server must still answer.
	if _, err := c.Call(ctx, "lastTransaction"); err != nil {
		return fmt.Errorf("server unusable while the disk is full: %w", err)
	}

	// Phase 2: the script frees space.
	fmt.Println("FULL")
	bufio.NewReader(os.Stdin).ReadString('\n')

	// Phase 3: commits work again.
	for i := range 5 { // 1.25 MiB: the script frees 2 MiB
		if err := commit(); err != nil {
			return fmt.Errorf("commit %d after space was freed: %w", i, err)
		}
	}
	fmt.Printf("phase 3: 5 commits acknowledged after space was freed\n")

	// Phase 4: every acknowledged revision loads back.
	for _, a := range all {
		r, err := c.Call(ctx, "loadSerial", a.oid.Bytes(), a.tid.Bytes())
		if err != nil {
			return fmt.Errorf("loadSerial %s %s: %w", a.oid, a.tid, err)
		}
		if b, ok := r.([]byte); !ok || !bytes.Equal(b, a.data) {
			return fmt.Errorf("loadSerial %s %s: wrong data", a.oid, a.tid)
		}
	}
	fmt.Printf("phase 4: all %d acknowledged records load back\n", len(all))
	return nil
}
