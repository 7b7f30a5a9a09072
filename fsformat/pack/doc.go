// Package pack packs a FileStorage (Data.fs) exactly as ZODB's
// FileStorage.pack does (spec pack.md): phase 1 finds the revisions that are
// reachable as of the pack time (GC from the root, or every current
// revision without GC), phase 2 copies them into FILE.pack with their data
// inlined in status 'p' transactions, phase 3 copies every later transaction
// with its pointers re-targeted, and the files are swapped. For the same
// input bytes, pack tid and gc flag the packed file and its Data.fs.index are
// byte-identical to ZODB's.
//
// Beyond ZODB:
//
//   - Multi-database GC (PackMulti): the databases of one multi-database are
//     marked together, following cross-database references ('m'/'n' forms),
//     so an object reachable only from another database is kept
//     (references.md §8–9); then each file is copied as a single pack would.
//   - A GC pack whose graph holds a dangling reference (ZODB: KeyError, pack
//     aborted) succeeds: the missing target is skipped and reported in
//     Result.Dangling.
//   - A no-GC pack also runs the future-backpointer scan (pack.md §2.4,
//     keeping the targets without following their references), so an undo
//     after the pack time that points at a non-current pre-pack revision no
//     longer makes the copy fail (ZODB: AssertionError in copyRest).
//   - An incomplete tail (partial header, interrupted 'c' commit, a
//     transaction running past the end) is left out of the copy and reported
//     in Result.TailIgnored instead of failing; the original keeps it in
//     Data.fs.old.
//   - The swap never leaves a moment without a Data.fs: the original is
//     hard-linked to Data.fs.old, the stale Data.fs.index removed, then
//     Data.fs.pack is renamed over Data.fs (atomic) and the directory synced;
//     ZODB renames Data.fs away first. A crash at any point leaves either the
//     original or the packed file under the name Data.fs.
//
// Why the output is not written through fsformat.Appender: the Appender
// commits each transaction with three writes (records, tlen, status byte) so
// that a live file is never seen half-written. FILE.pack is invisible until
// the rename, so pack writes through one large buffer and patches a
// transaction's length in that buffer (one write per MiBs of output); the
// Appender also refuses the 'u' status that copyRest must carry over.
//
// # Memory
//
// Phase 1 keeps oid → current position and oid → reachable position in two
// fsindex.Index maps (about 9 bytes per oid each for dense oids) plus the
// GC stack (8–16 bytes per pending oid); the first map is dropped before the
// copy, which builds the output index (another ~9 bytes per oid). Peak: about
// 30 bytes per live object plus the buffers (a 4 MiB read window, a 4 MiB
// output buffer, the largest record). reach_ex (extra revisions kept because
// an undo after the pack time points at them) is a small Go map.
//
// # Online packs
//
// Pack runs without any lock of its own: an offline caller takes
// Data.fs.lock first (commands/pack.go), and the ZEO server passes
// Options.CommitLock, which is taken only for the final catch-up (copying
// the transactions committed while the pack ran, as copyRest does) and the
// swap; Options.Swapped runs under that lock so the server can reopen the
// file and install Result.Index.
package pack
