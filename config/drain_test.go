package config

import (
	"testing"
	"time"
)

// TestDrainKeys: DrainDelay and AgentPort, their defaults and values.
func TestDrainKeys(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "services/a.yaml": web, "bin/app": script}.write(t)
	c := mustLoad(t, dir)
	checkEqual(t, "DrainDelay", c.DrainDelay, 5*time.Second)
	checkEqual(t, "AgentPort", c.AgentPort, 0)

	dir = tree{"smoothserve.yaml": "ProxyPort: 8085\nDrainDelay: 0\nAgentPort: 9777\n", "services/a.yaml": web, "bin/app": script}.write(t)
	c = mustLoad(t, dir)
	checkEqual(t, "DrainDelay", c.DrainDelay, time.Duration(0))
	checkEqual(t, "AgentPort", c.AgentPort, 9777)
}

// TestDrainKeyRules: each rule's message and line. smoothserve.yaml's line
// 1 is ProxyPort: 8085; web's instance ports are 9000..9003.
func TestDrainKeyRules(t *testing.T) {
	main := func(extra string) tree {
		return tree{"smoothserve.yaml": "ProxyPort: 8085\n" + extra, "services/a.yaml": web}
	}
	tests := []struct {
		name  string
		files tree
		want  []string
	}{
		{"DrainDelay negative", main("DrainDelay: -1s\n"), []string{"$MAIN:2: DrainDelay: must not be negative, got -1s"}},
		{"DrainDelay a word", main("DrainDelay: soon\n"), []string{`$MAIN:2: DrainDelay: want a number of seconds or a duration like "1.5s", got "soon"`}},
		{"AgentPort out of range", main("AgentPort: 70000\n"), []string{"$MAIN:2: AgentPort: must be 1..65535, got 70000"}},
		{"AgentPort 0", main("AgentPort: 0\n"), []string{"$MAIN:2: AgentPort: must be 1..65535, got 0"}},
		{"AgentPort on ProxyPort", main("AgentPort: 8085\n"),
			[]string{"$MAIN:2: AgentPort: port 8085 is also ProxyPort ($MAIN:1); the agent needs a port of its own"}},
		{"AgentPort in the instance ports", main("AgentPort: 9001\n"),
			[]string{`$MAIN:2: AgentPort: port 9001 is also one of the instance ports 9000..9003 of service "web" ($S/a.yaml:3); the agent needs a port of its own`}},
		{"AgentPort on AdminAddr's", main("AdminAddr: 127.0.0.1:9777\nAgentPort: 9777\n"),
			[]string{"$MAIN:3: AgentPort: port 9777 is also AdminAddr's ($MAIN:2); the agent needs a port of its own"}},
		{"AgentPort beside AdminAddr on another address", main("ProxyAddr: 127.0.0.2\nAdminAddr: 127.0.0.1:9777\nAgentPort: 9777\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLoadErrors(t, tt.files, tt.want) })
	}
}
