package config

// The keys each file may hold, and the field each one decodes into. A key
// missing here is an unknown key, so adding a field means adding it here,
// in defaults.go if it has a default, and in validate.go if it has rules.

// mainKeys are the keys of smoothserve.yaml, in the seed's CamelCase.
func mainKeys(c *Config) map[string]decodeFunc {
	return map[string]decodeFunc{
		"ProxyAddr":           stringValue(&c.ProxyAddr),
		"ProxyPort":           intValue(&c.ProxyPort),
		"SubConfigDir":        pathValue(&c.SubConfigDir),
		"CommandPort":         intValue(&c.CommandPort),
		"LogDir":              pathValue(&c.LogDir),
		"ControlSocket":       pathValue(&c.ControlSocket),
		"PidFile":             pathValue(&c.PidFile),
		"StateDir":            pathValue(&c.StateDir),
		"TrustedProxies":      prefixList(&c.TrustedProxies),
		"HeaderTimeout":       durationValue(&c.HeaderTimeout),
		"IdleTimeout":         durationValue(&c.IdleTimeout),
		"MaxHeaderBytes":      intValue(&c.MaxHeaderBytes),
		"MaxHeaderFields":     intValue(&c.MaxHeaderFields),
		"BodyTimeout":         durationValue(&c.BodyTimeout),
		"UpgradeTimeout":      durationValue(&c.UpgradeTimeout),
		"UpgradeDrainTimeout": durationValue(&c.UpgradeDrainTimeout),
		"HTTPSPort":           intValue(&c.HTTPSPort),
		"ACMEDirectory":       stringValue(&c.ACMEDirectory),
		"ACMEEmail":           stringValue(&c.ACMEEmail),
		"ACMECARoot":          pathValue(&c.ACMECARoot),
		"CertDir":             pathValue(&c.CertDir),
		"AccessLog":           logPath(&c.AccessLog),
		"AccessLogFormat":     stringValue(&c.AccessLogFormat),
		"AdminAddr":           stringValue(&c.AdminAddr),
		"AdminAuth":           adminUsers(&c.AdminAuth),
		"DrainDelay":          durationValue(&c.DrainDelay),
		"AgentPort":           intValue(&c.AgentPort),
	}
}

// serviceKeys are the keys of a service file, in the seed's snake_case.
func serviceKeys(s *Service) map[string]decodeFunc {
	return map[string]decodeFunc{
		"name":                    stringValue(&s.Name),
		"server_name":             serverNames(&s.ServerNames),
		"default_server":          boolValue(&s.DefaultServer),
		"server_ip":               stringValue(&s.ServerIP),
		"port":                    intValue(&s.Port),
		"start_instance_port":     intValue(&s.StartInstancePort),
		"instance_count":          intValue(&s.InstanceCount),
		"executable_path":         pathValue(&s.ExecutablePath),
		"working_dir":             pathValue(&s.WorkingDir),
		"args":                    stringList(&s.Args),
		"env":                     envMap(&s.Env),
		"enabled":                 boolValue(&s.Enabled),
		"auto_restart":            boolValue(&s.AutoRestart),
		"delay_running_time":      durationValue(&s.DelayRunningTime),
		"delay_update_time":       durationValue(&s.DelayUpdateTime),
		"watch_files":             pathList(&s.WatchFiles),
		"watch_ignore":            stringList(&s.WatchIgnore),
		"health_check":            stringValue(&s.HealthCheck),
		"start_timeout":           durationValue(&s.StartTimeout),
		"stop_timeout":            durationValue(&s.StopTimeout),
		"kill_timeout":            durationValue(&s.KillTimeout),
		"response_header_timeout": durationValue(&s.ResponseHeaderTimeout),
		"max_body_size":           byteSize(&s.MaxBodySize),
		"restart_strategy":        stringValue(&s.RestartStrategy),
		"tls":                     stringValue(&s.TLS),
		"tls_cert":                pathValue(&s.TLSCert),
		"tls_key":                 pathValue(&s.TLSKey),
		"https_redirect":          boolValue(&s.HTTPSRedirect),
		"compress":                boolValue(&s.Compress),
		"access_log":              logPath(&s.AccessLog),
		"health_check_interval":   durationValue(&s.HealthCheckInterval),
		"health_check_fails":      intValue(&s.HealthCheckFails),
		"unhealthy_restart_after": durationValue(&s.UnhealthyRestartAfter),
	}
}
