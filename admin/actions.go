package admin

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"smoothserve/control"
	"smoothserve/control/api"
)

// actionTimeout bounds an action, which runs detached from its request:
// closing or reloading the page does not abort a rolling restart.
const actionTimeout = 15 * time.Minute

// operation carries out one action on the service named in the path ("" for
// upgrade), for user, and says what it did.
type operation func(ctx context.Context, name, user string) (string, error)

// action is the handler of a POST that carries out op once authorize lets
// it through.
func (h *handler) action(verb string, op operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, ok := h.authorize(w, r)
		if !ok {
			return
		}
		name := r.PathValue("name")
		h.log.Info("admin: "+verb, "service", name, "user", user, "client", r.RemoteAddr)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), actionTimeout)
		defer cancel()
		msg, err := op(ctx, name, user)
		if err != nil {
			h.log.Warn("admin: "+verb+" failed", "service", name, "user", user, "err", err)
			writeJSON(w, control.StatusFor(err), result{Error: redactPaths(err.Error())})
			return
		}
		writeJSON(w, http.StatusOK, result{OK: true, Message: redactPaths(msg)})
	}
}

// Trigger is the start of the trigger the admin page gives the rollouts
// it starts; the user follows it.
const Trigger = "admin page restart"

func (h *handler) restart(ctx context.Context, name, user string) (string, error) {
	rollouts, err := h.d.Restart(ctx, name, Trigger+" by "+user)
	if err != nil {
		if len(rollouts) > 0 {
			return "", fmt.Errorf("%w (%s)", err, summarize(rollouts))
		}
		return "", err
	}
	if len(rollouts) == 0 {
		return "nothing to restart", nil
	}
	return summarize(rollouts), nil
}

// summarize says in a line how each rollout ended.
func summarize(rollouts []*api.Rollout) string {
	parts := make([]string, 0, len(rollouts))
	for _, ro := range rollouts {
		s := fmt.Sprintf("%s %s, %d replaced", ro.Service, ro.Outcome, len(ro.Instances))
		if !ro.FinishedAt.IsZero() {
			s += " in " + fmtDuration(ro.FinishedAt.Sub(ro.StartedAt))
		}
		if ro.Error != "" {
			s += ": " + ro.Error
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func (h *handler) stop(ctx context.Context, name, user string) (string, error) {
	if err := h.d.StopService(ctx, name); err != nil {
		return "", err
	}
	return name + " stopped", nil
}

func (h *handler) start(ctx context.Context, name, user string) (string, error) {
	if err := h.d.StartService(ctx, name); err != nil {
		return "", err
	}
	return name + " started, ready", nil
}

func (h *handler) upgrade(ctx context.Context, _, user string) (string, error) {
	pid, err := h.d.Upgrade(ctx)
	if err != nil {
		return "", fmt.Errorf("upgrade failed; the running smoothserve goes on serving: %w", err)
	}
	if pid == 0 {
		return fmt.Sprintf("smoothserve upgraded: pid %d → a new process", os.Getpid()), nil
	}
	return fmt.Sprintf("smoothserve upgraded: pid %d → %d", os.Getpid(), pid), nil
}
