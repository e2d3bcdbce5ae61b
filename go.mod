module smoothserve

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/spf13/pflag v1.0.10
	gopkg.in/yaml.v3 v3.0.1
)

require golang.org/x/sys v0.13.0 // indirect
