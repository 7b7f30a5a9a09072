// Package analysis computes the reports of the FileStorage analysis tools —
// fsstats, analyze, fsrefs, fsoids, netspace — and the cross-database
// reference listing (xrefs), from a Data.fs read through fsformat and the
// reference scanner in fsformat/refs. The text renderings reproduce the
// Python scripts byte for byte (tools-output.md §5–§10); the commands
// package only parses flags and picks a rendering.
//
// Choices a newcomer may question:
//
//   - Reports are written to an io.Writer given by the caller instead of being
//     returned as values: they are long, line-oriented and must match Python's
//     formatting exactly, so the formatting lives next to the computation.
//   - Where a Python tool crashes on Python 3 (fsstats when a histogram bin
//     reaches 40, fsoids sorting None against bytes, netspace's has_key), the
//     code does what the tool meant to do, as the recorded [py3fix] fixtures
//     show.
//   - Per-object state is kept in maps keyed by the oid with small fixed-size
//     values, so memory grows with the number of objects, never with the file
//     size or the number of revisions.
package analysis
