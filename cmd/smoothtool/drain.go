package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"smoothserve/control/api"
)

// drain carries out drain and undrain: of the host, or of one instance
// (NAME#SLOT).
func (t *tool) drain(ctx context.Context) error {
	if t.cmd.target != "" {
		return t.drainInstance(ctx)
	}
	if t.cmd.verb == "undrain" {
		st, err := t.client.Undrain(ctx)
		if err != nil {
			return fmt.Errorf("undrain: %w", err)
		}
		fmt.Fprintf(t.out, "host %s: /health answers 200\n", st.State)
		return nil
	}
	if t.cmd.wait {
		fmt.Fprintf(t.notes, "smoothtool: draining; waiting until no request is in flight (Ctrl-C stops waiting, not the drain)\n")
	}
	start := time.Now()
	st, err := t.client.Drain(ctx, t.cmd.wait, t.cmd.timeout)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	writeDrain(t.out, st, time.Since(start))
	return nil
}

// writeDrain prints the host's drain as a drain command left it.
func writeDrain(out interface{ Write([]byte) (int, error) }, st *api.HostStatus, waited time.Duration) {
	switch st.State {
	case api.HostDrained:
		how := "no request in flight"
		if st.TimedOut {
			how = fmt.Sprintf("timeout passed with %d requests in flight", st.InFlight)
		}
		fmt.Fprintf(out, "host drained (%s) after %v: %d connections closed, %d requests served since the drain began\n",
			how, waited.Round(time.Millisecond), st.ClosedConnections, st.Served)
	default:
		phase := "requests served as before until DrainDelay has passed"
		if st.Closing {
			phase = "connections close after their response"
		}
		fmt.Fprintf(out, "host %s since %s: /health answers 503; %s; %d requests in flight\n",
			st.State, st.DrainSince.Format(time.TimeOnly), phase, st.InFlight)
	}
}

// drainInstance carries out drain NAME#SLOT and undrain NAME#SLOT.
func (t *tool) drainInstance(ctx context.Context) error {
	name, slot, err := parseInstance(t.cmd.target)
	if err != nil {
		return err // parseArgs let it through: cannot happen
	}
	if t.cmd.verb == "undrain" {
		if err := t.client.UndrainInstance(ctx, name, slot); err != nil {
			return fmt.Errorf("undrain %s: %w", t.cmd.target, err)
		}
		fmt.Fprintf(t.out, "%s back in rotation\n", t.cmd.target)
		t.printStatus(ctx)
		return nil
	}
	if err := t.client.DrainInstance(ctx, name, slot, t.cmd.force); err != nil {
		return fmt.Errorf("drain %s: %w", t.cmd.target, err)
	}
	fmt.Fprintf(t.out, "%s out of rotation; it keeps running (smoothtool undrain %s puts it back)\n", t.cmd.target, t.cmd.target)
	t.printStatus(ctx)
	return nil
}

// parseInstance reads NAME#SLOT.
func parseInstance(s string) (name string, slot int, err error) {
	name, num, ok := strings.Cut(s, "#")
	if !ok || name == "" {
		return "", 0, fmt.Errorf("want NAME#SLOT (such as web#0) for one instance, or nothing for the host, got %q", s)
	}
	slot, err = strconv.Atoi(num)
	if err != nil || slot < 0 || strings.Trim(num, "0123456789") != "" {
		return "", 0, fmt.Errorf("want a slot number from 0 after '#', got %q", s)
	}
	return name, slot, nil
}
