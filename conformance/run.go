package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"smoothserve/conformance/recording"
)

// Report is the outcome of a run: every case through every column.
type Report struct {
	Cases   []Case
	Columns []*Column
	Results [][]Result // [column][case]
	Missing []string
}

// Run sends every case through every column, the columns side by side
// (each has a lane of the recorder to itself), the cases of a column one
// after another: a case must not see another's requests, nor another's
// leftovers on a pooled connection, except as the probe that follows it.
func (b *Bench) Run(cases []Case) *Report {
	rep := &Report{Cases: cases, Columns: b.Columns, Results: make([][]Result, len(b.Columns)), Missing: b.Missing}
	var wg sync.WaitGroup
	for i, col := range b.Columns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Results[i] = make([]Result, len(cases))
			for j := range cases {
				rep.Results[i][j] = b.runOne(col, &cases[j])
			}
		}()
	}
	wg.Wait()
	return rep
}

// Column returns the results of the named column, or nil.
func (r *Report) Column(name string) []Result {
	for i, c := range r.Columns {
		if c.Name == name {
			return r.Results[i]
		}
	}
	return nil
}

func (b *Bench) runOne(col *Column, c *Case) Result {
	if err := b.resetRecords(col.lane); err != nil {
		return Result{Class: Hung, Notes: []string{"recorder: " + err.Error()}}
	}
	ex := runCase(col.addr, c)
	recs, err := b.fetchRecords(col.lane)
	if err != nil {
		return Result{Class: Hung, Notes: []string{"recorder: " + err.Error()}}
	}
	return classify(c, ex, recs)
}

var controlClient = &http.Client{Timeout: 3 * time.Second}

func (b *Bench) resetRecords(lane string) error {
	resp, err := controlClient.Post("http://"+b.control+"/reset?lane="+url.QueryEscape(lane), "text/plain", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset: %s", resp.Status)
	}
	return nil
}

func (b *Bench) fetchRecords(lane string) ([]recording.Record, error) {
	resp, err := controlClient.Get("http://" + b.control + "/records?lane=" + url.QueryEscape(lane))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var recs []recording.Record
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	return recs, nil
}
