package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The seed's files, byte for byte, must load: they are what existing users
// have on disk.

func readSeed(t *testing.T) (main, service string) {
	t.Helper()
	m, err := os.ReadFile("testdata/seed/smoothserve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile("testdata/seed/services/example.com.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(m), string(s)
}

// TestSeedAsWritten: the seed names an executable that does not exist, and
// that is the one and only problem.
func TestSeedAsWritten(t *testing.T) {
	seedDir, err := filepath.Abs("testdata/seed")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("testdata/seed/smoothserve.yaml") // relative on purpose
	if cfg != nil {
		t.Error("Load returned a Config along with errors")
	}
	got := errorLines(t, err)
	want := []string{
		filepath.Join(seedDir, "services/example.com.yaml") + ":7: executable_path: " +
			filepath.Join(seedDir, "your/web/service/bin/file") + ": no such file",
	}
	checkEqual(t, "errors", got, want)
}

// TestSeedWithExecutable: with only executable_path pointing at a real
// executable, the seed loads with the values it means.
func TestSeedWithExecutable(t *testing.T) {
	main, service := readSeed(t)
	const seedPath = "executable_path: your/web/service/bin/file #"
	if !strings.Contains(service, seedPath) {
		t.Fatal("the seed service file has changed")
	}
	withoutProxyPort := strings.Replace(main, main[strings.Index(main, "ProxyPort"):strings.Index(main, "SubConfigDir")], "", 1)

	tests := []struct {
		name      string
		main      string
		exe       string // where the executable is, relative to the setup folder
		path      string // what executable_path says
		proxyPort int
	}{
		{"replaced path", main, "bin/app", "$D/bin/app", 8085},
		{"unchanged text, file created", main, "your/web/service/bin/file", "your/web/service/bin/file", 8085},
		{"second seed without ProxyPort", withoutProxyPort, "bin/app", "$D/bin/app", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree{tt.exe: script}.write(t)
			svc := strings.Replace(service, "your/web/service/bin/file", expand(dir, tt.path), 1)
			tree{"smoothserve.yaml": tt.main, "services/example.com.yaml": svc}.writeIn(t, dir)
			cfg := mustLoad(t, dir)

			checkEqual(t, "ProxyPort", cfg.ProxyPort, tt.proxyPort)
			checkEqual(t, "ProxyAddr", cfg.ProxyAddr, "127.0.0.1")
			checkEqual(t, "CommandPort", cfg.CommandPort, 8080)
			checkEqual(t, "SubConfigDir", cfg.SubConfigDir, filepath.Join(dir, "services"))
			checkEqual(t, "MaxHeaderFields", cfg.MaxHeaderFields, 100)
			checkEqual(t, "BodyTimeout", cfg.BodyTimeout, 60*time.Second)
			checkEqual(t, "ProxyPorts", cfg.ProxyPorts(), []int{8085})
			if len(cfg.Services) != 1 {
				t.Fatalf("got %d services, want 1", len(cfg.Services))
			}
			s := cfg.Services[0]
			exeDir := filepath.Dir(filepath.Join(dir, tt.exe))
			checkEqual(t, "Name", s.Name, "service_name")
			checkEqual(t, "ServerNames", s.ServerNames, []string{"service_domain", "service2_domain"})
			checkEqual(t, "ServerIP", s.ServerIP, "127.0.0.1")
			checkEqual(t, "Port", s.Port, 8085)
			checkEqual(t, "StartInstancePort", s.StartInstancePort, 8086)
			checkEqual(t, "InstanceCount", s.InstanceCount, 3)
			checkEqual(t, "ExecutablePath", s.ExecutablePath, filepath.Join(dir, tt.exe))
			checkEqual(t, "AutoRestart", s.AutoRestart, true)
			checkEqual(t, "Enabled", s.Enabled, true)
			checkEqual(t, "DelayRunningTime", s.DelayRunningTime, 3*time.Second)
			checkEqual(t, "DelayUpdateTime", s.DelayUpdateTime, 2*time.Second)
			checkEqual(t, "StartTimeout", s.StartTimeout, 30*time.Second)
			checkEqual(t, "StopTimeout", s.StopTimeout, 30*time.Second)
			checkEqual(t, "MaxBodySize", s.MaxBodySize, int64(0))
			checkEqual(t, "RestartStrategy", s.RestartStrategy, StrategySurge)
			checkEqual(t, "Args", s.Args, []string{"-port={port}"})
			watch := []string{
				filepath.Join(exeDir, "your/view/folder"),
				filepath.Join(exeDir, "your/web/files"),
				filepath.Join(exeDir, "files/in/your/web/service/folder"),
			}
			checkEqual(t, "WatchFiles", s.WatchFiles, watch)
			checkEqual(t, "Lines[executable_path]", s.Lines["executable_path"], 7)

			svcFile := filepath.Join(dir, "services/example.com.yaml")
			wantWarnings := []string{
				filepath.Join(dir, "smoothserve.yaml") + ":1: CommandPort 8080 is accepted for compatibility but opens no TCP port; smoothtool uses ControlSocket (" +
					filepath.Join(dir, "smoothserve.sock") + ")",
			}
			for _, w := range watch {
				wantWarnings = append(wantWarnings, svcFile+":10: watch_files: "+w+" does not exist")
			}
			checkEqual(t, "Warnings", cfg.Warnings, wantWarnings)
		})
	}
}
