// Command recorder is the recording instance of the conformance suite
// (package conformance): smoothserve starts it as a service's executable,
// nginx and HAProxy proxy to it too, each on a listener (a lane) of its
// own. It records the raw bytes of every request that reaches it, answers
// each with an echo (or, for AnswerPath+id, the case's scripted answer),
// and serves its records to the suite on a control listener.
//
// Flags: -port, the main lane's port. Environment: see package recording.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"smoothserve/conformance/recording"
)

func main() {
	port := flag.Int("port", 0, "port of the main lane, on 127.0.0.1")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	if err := run(*port); err != nil {
		log.Fatalf("recorder: %v", err)
	}
}

func run(port int) error {
	scripts, err := loadScripts(os.Getenv(recording.EnvScripts))
	if err != nil {
		return err
	}
	st := newStore(scripts)
	lanes := map[string]string{recording.MainLane: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if spec := os.Getenv(recording.EnvLanes); spec != "" {
		for _, item := range strings.Split(spec, ",") {
			name, addr, ok := strings.Cut(item, "=")
			if !ok {
				return fmt.Errorf("%s: %q is not name=host:port", recording.EnvLanes, item)
			}
			lanes[name] = addr
		}
	}
	errc := make(chan error, len(lanes)+1)
	for name, addr := range lanes {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("lane %s: %w", name, err)
		}
		go func() { errc <- st.accept(name, ln) }()
	}
	control := os.Getenv(recording.EnvControl)
	if control == "" {
		return errors.New(recording.EnvControl + " is not set")
	}
	cln, err := net.Listen("tcp", control)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	go func() { errc <- http.Serve(cln, st.controlHandler()) }()
	log.Printf("recorder: lanes %v, control %s, %d scripts", lanes, control, len(scripts))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-stop:
		log.Printf("recorder: %v: exiting", sig)
		return nil
	case err := <-errc:
		return err
	}
}

func loadScripts(path string) (map[string]recording.Script, error) {
	scripts := map[string]recording.Script{}
	if path == "" {
		return scripts, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &scripts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return scripts, nil
}

// controlHandler serves GET /records?lane=L (the lane's records, JSON) and
// POST /reset?lane=L (forget them, but for requests still arriving).
func (st *store) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /records", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st.records(r.URL.Query().Get("lane")))
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		st.reset(r.URL.Query().Get("lane"))
	})
	return mux
}
