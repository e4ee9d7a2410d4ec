package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/jackc/pglogrepl"
)

// spill keeps the streamed chunks of one in-progress transaction on local
// disk until its commit or abort, so a transaction of any size costs a
// bounded amount of memory. Each record is the raw pgoutput message with the
// (sub)transaction id that produced it and its WAL position.
type spill struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	aborted map[uint32]bool // subtransactions rolled back inside the transaction
	records int64
}

const spillHeader = 4 + 8 + 4 // xid, wal start, length

func openSpill(dir string, xid uint32) (*spill, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating spill directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "xid-"+strconv.FormatUint(uint64(xid), 10)+".spill")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating spill file: %w", err)
	}
	return &spill{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), aborted: map[uint32]bool{}}, nil
}

func (s *spill) append(xid uint32, walStart pglogrepl.LSN, data []byte) error {
	var h [spillHeader]byte
	binary.LittleEndian.PutUint32(h[0:], xid)
	binary.LittleEndian.PutUint64(h[4:], uint64(walStart))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(data)))
	if _, err := s.w.Write(h[:]); err != nil {
		return fmt.Errorf("writing spill file %s: %w", s.path, err)
	}
	if _, err := s.w.Write(data); err != nil {
		return fmt.Errorf("writing spill file %s: %w", s.path, err)
	}
	s.records++
	return nil
}

// abortSub records that subtransaction xid rolled back: its changes are
// skipped when the transaction is replayed.
func (s *spill) abortSub(xid uint32) { s.aborted[xid] = true }

// replay calls fn for every record of a subtransaction that did not abort,
// in the order they were streamed. data is only valid during the call.
func (s *spill) replay(fn func(walStart pglogrepl.LSN, data []byte) error) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("flushing spill file %s: %w", s.path, err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding spill file %s: %w", s.path, err)
	}
	r := bufio.NewReaderSize(s.f, 1<<20)
	var h [spillHeader]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading spill file %s: %w", s.path, err)
		}
		xid := binary.LittleEndian.Uint32(h[0:])
		walStart := pglogrepl.LSN(binary.LittleEndian.Uint64(h[4:]))
		n := int(binary.LittleEndian.Uint32(h[12:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("reading spill file %s: %w", s.path, err)
		}
		if s.aborted[xid] {
			continue
		}
		if err := fn(walStart, buf); err != nil {
			return err
		}
	}
}

// remove closes and deletes the spill file.
func (s *spill) remove() error {
	cerr := s.f.Close()
	rerr := os.Remove(s.path)
	if errors.Is(rerr, os.ErrNotExist) {
		rerr = nil
	}
	return errors.Join(cerr, rerr)
}
