package certs

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Session tickets: the keys that encrypt them are this Manager's, made at
// start or taken from the process this one replaces (an upgrade), so that
// clients resume their TLS sessions across it. Go rotates only keys it
// made itself; these are rotated here: a new key every ticketRotate, the
// last ticketKeep kept for decrypting (so a ticket is good for about
// ticketRotate × ticketKeep). They never touch the disk: they go to the
// next process in a memfd.

const (
	ticketRotate = time.Hour
	ticketKeep   = 24
)

// initTickets sets the keys: from inherited (a memfd the previous process
// wrote, or nil) or new ones, and starts rotating them.
func (m *Manager) initTickets(inherited *os.File) error {
	var keys [][32]byte
	if inherited != nil {
		var err error
		keys, err = readTicketKeys(inherited)
		inherited.Close()
		if err != nil {
			m.log.Warn("the previous smoothserve's TLS session ticket keys cannot be read; clients make new sessions", "err", err)
		}
	}
	if len(keys) == 0 {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			return err
		}
		keys = [][32]byte{k}
	}
	m.tickets = keys
	m.tlsCfg.SetSessionTicketKeys(keys)
	go m.rotateTickets()
	return nil
}

func (m *Manager) rotateTickets() {
	t := time.NewTicker(ticketRotate)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			continue
		}
		m.mu.Lock()
		m.tickets = append([][32]byte{k}, m.tickets[:min(len(m.tickets), ticketKeep-1)]...)
		m.tlsCfg.SetSessionTicketKeys(m.tickets)
		m.mu.Unlock()
	}
}

// TicketKeysFile is a memfd holding the session ticket keys, for the
// process that replaces this one; the caller closes it once passed.
func (m *Manager) TicketKeysFile() (*os.File, error) {
	m.mu.Lock()
	keys := append([][32]byte(nil), m.tickets...)
	m.mu.Unlock()
	fd, err := unix.MemfdCreate("smoothserve-ticket-keys", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for the session ticket keys: %w", err)
	}
	f := os.NewFile(uintptr(fd), "smoothserve-ticket-keys")
	for _, k := range keys {
		if _, err := f.Write(k[:]); err != nil {
			f.Close()
			return nil, fmt.Errorf("writing the session ticket keys: %w", err)
		}
	}
	return f, nil
}

func readTicketKeys(f *os.File) ([][32]byte, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 32*ticketKeep+1))
	if err != nil {
		return nil, err
	}
	if len(b) == 0 || len(b)%32 != 0 || len(b) > 32*ticketKeep {
		return nil, fmt.Errorf("%d bytes, not whole keys", len(b))
	}
	keys := make([][32]byte, len(b)/32)
	for i := range keys {
		copy(keys[i][:], b[32*i:])
	}
	return keys, nil
}
