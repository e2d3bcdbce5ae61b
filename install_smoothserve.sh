#!/usr/bin/env bash
# install_smoothserve.sh: install smoothserve as a systemd service.
#
#   sudo bash install_smoothserve.sh              install, enable and start it
#   bash install_smoothserve.sh --print-unit      print the unit, install nothing
#   bash install_smoothserve.sh --print-logrotate print the logrotate snippet
#   sudo bash install_smoothserve.sh --uninstall  stop, disable and remove it
#
# Run it from the folder that holds smoothserve and smoothserve.yaml (it
# looks in its own folder; --dir and --config say otherwise). The
# configuration is checked first (smoothserve --check): a bad one is refused.
set -euo pipefail

prog=install_smoothserve.sh
marker="# Installed by $prog"

usage() {
	cat <<EOF
usage: bash $prog [--print-unit | --uninstall] [options]

Installs smoothserve as the systemd service NAME (/etc/systemd/system/NAME.service),
enables it and starts it. Needs root, except --print-unit.

  --print-unit     print the unit file and exit; installs nothing
  --print-logrotate print the logrotate snippet (/etc/logrotate.d/NAME) and exit
  --uninstall      stop and disable the service and remove its unit
  --dir DIR        folder holding smoothserve (default: this script's folder)
  --config FILE    configuration (default: DIR/smoothserve.yaml)
  --name NAME      unit name (default: smoothserve)
  --user USER      run smoothserve as USER (default: root); USER must be
                   able to write its logs and control socket
  -h, --help       show this help

Upgrade to a new smoothserve binary without dropping a request:
  systemctl reload NAME
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

action=install dir="" config="" name=smoothserve user=""
while [ $# -gt 0 ]; do
	case $1 in
	--print-unit) action=print ;;
	--print-logrotate) action=print-logrotate ;;
	--uninstall) action=uninstall ;;
	--dir | --config | --name | --user)
		[ $# -ge 2 ] || { echo "$prog: $1 needs a value" >&2; exit 2; }
		case $1 in
		--dir) dir=$2 ;;
		--config) config=$2 ;;
		--name) name=$2 ;;
		--user) user=$2 ;;
		esac
		shift
		;;
	-h | --help) usage; exit 0 ;;
	*) echo "$prog: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

[[ $name =~ ^[A-Za-z0-9_.:-]+$ ]] || die "--name $name: use letters, digits and _ . : - only"
unit_file=/etc/systemd/system/$name.service
logrotate_file=/etc/logrotate.d/$name

if [ "$action" != print ] && [ "$action" != print-logrotate ]; then
	[ "$(id -u)" -eq 0 ] || die "installing a system service needs root: sudo bash $prog (--print-unit works as any user)"
	# sd_booted(3): systemd is the init system if and only if this exists.
	[ -d /run/systemd/system ] ||
		die "systemd is not running on this machine (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): no service installed; --print-unit prints the unit for another machine"
fi

# ours reports whether the unit file was written by this script: never
# overwrite or remove a unit someone else wrote under the same name.
ours() { [ ! -e "$unit_file" ] || grep -qxF "$marker" "$unit_file"; }

if [ "$action" = uninstall ]; then
	[ -e "$unit_file" ] || { echo "$prog: no $unit_file: nothing to uninstall"; exit 0; }
	ours || die "$unit_file was not written by $prog: leaving it alone"
	echo "stopping $name (requests in flight finish first)..."
	systemctl disable --now "$name"
	rm -f "$unit_file"
	if [ -e "$logrotate_file" ] && grep -qxF "$marker" "$logrotate_file"; then rm -f "$logrotate_file"; fi
	systemctl daemon-reload
	systemctl reset-failed "$name" 2>/dev/null || true
	echo "$name uninstalled; $(dirname "$unit_file") no longer holds $name.service"
	exit 0
fi

# Absolute paths: the unit runs from anywhere. A path with spaces, % or $
# would need escaping in a unit file; refusing is clearer than a wrong unit.
given=${dir:-$(dirname "${BASH_SOURCE[0]}")}
dir=$(realpath -e "$given" 2>/dev/null) || die "no folder $given"
binary=$dir/smoothserve
[[ -f $binary && -x $binary ]] || die "no executable smoothserve in $dir (run this script from the folder that holds it, or give --dir)"
given=${config:-$dir/smoothserve.yaml}
config=$(realpath -e "$given" 2>/dev/null) || die "no configuration file $given"
for p in "$dir" "$config"; do
	[[ $p =~ ^[A-Za-z0-9/._+,:@-]+$ ]] || die "$p: a path for a unit file must not hold spaces or special characters"
done
[ -z "$user" ] || [ "$action" = print ] || id -u "$user" >/dev/null 2>&1 || die "--user $user: no such user"

# Refuse a configuration smoothserve itself would refuse, showing why
# (FILE:LINE: key: what is wrong). Its warnings are worth reading too.
if ! check_out=$("$binary" --check --config "$config" 2>&1); then
	printf '%s\n' "$check_out" >&2
	die "the configuration is invalid: fix it, then run $prog again; nothing was installed"
fi
printf '%s\n' "$check_out" >&2

# seconds_of prints, rounded up to whole seconds, the larger of DEFAULT
# (what a file without KEY gets) and the largest top-level KEY in FILES.
# Values are what smoothserve accepts: seconds (3, 1.5) or a Go duration
# ("300ms", "1m30s"); --check has made sure of that.
seconds_of() {
	local key=$1 default=$2
	shift 2
	awk -v key="$key" -v max="$default" '
		function ceil(x) { return x == int(x) ? x : int(x) + 1 }
		function seconds(v,   total, n, u) {
			if (v ~ /^[0-9]*\.?[0-9]+$/) return ceil(v + 0)
			total = 0
			while (match(v, /^[0-9]*\.?[0-9]+/)) {
				n = substr(v, 1, RLENGTH) + 0; v = substr(v, RLENGTH + 1)
				match(v, /^[a-zµ]+/); u = substr(v, 1, RLENGTH); v = substr(v, RLENGTH + 1)
				total += n * (u == "h" ? 3600 : u == "m" ? 60 : u == "s" ? 1 : u == "ms" ? 1e-3 : u == "ns" ? 1e-9 : 1e-6)
			}
			return ceil(total)
		}
		$0 ~ "^" key ":" {
			v = substr($0, length(key) + 2)
			sub(/[ \t]#.*/, "", v); gsub(/[ \t"\047]/, "", v)
			if (v != "" && seconds(v) > max) max = seconds(v)
		}
		END { print max }' "$@" /dev/null
}

# The service files: every *.yaml and *.yml in SubConfigDir, which is
# relative to the folder of smoothserve.yaml.
sub_dir=$(awk '/^SubConfigDir:/ { sub(/^SubConfigDir:/, ""); sub(/[ \t]#.*/, ""); gsub(/[ \t"\047]/, ""); print }' "$config")
sub_dir=${sub_dir:-services}
[[ $sub_dir = /* ]] || sub_dir=$(dirname "$config")/$sub_dir
shopt -s nullglob
service_files=("$sub_dir"/*.yaml "$sub_dir"/*.yml)
shopt -u nullglob

upgrade_drain=$(seconds_of UpgradeDrainTimeout 60 "$config")
max_stop=$(seconds_of stop_timeout 30 "${service_files[@]}")
max_start=$(seconds_of start_timeout 30 "${service_files[@]}")
max_kill=$(seconds_of kill_timeout 10 "${service_files[@]}")
# A stop can come while an upgrade drains the old daemon; the new one then
# drains its proxy (up to stop_timeout), drains its instances (stop_timeout
# again), and SIGKILLs what is left of an instance kill_timeout after
# SIGTERM. 20 s to spare.
timeout_stop=$((upgrade_drain + 2 * max_stop + max_kill + 20))
# Ready (READY=1) once the instances are; each has start_timeout, then is
# retried.
timeout_start=$((max_start + 60))

unit() {
	cat <<EOF
$marker
# from $dir
# Upgrade to a new binary without dropping a request: systemctl reload $name
# Reinstall after editing timeouts in the configuration: they set the ones below.

[Unit]
Description=smoothserve reverse proxy and process supervisor ($config)
After=network.target

[Service]
# smoothserve sends READY=1 once its services are ready. On reload each new
# daemon sends MAINPID=<its pid> and READY=1 itself: hence NotifyAccess=all.
# The old one exits only after that, or systemd would take its exit for the
# end of the service.
Type=notify
NotifyAccess=all
ExecStart=$binary --config $config
ExecReload=/bin/kill -HUP \$MAINPID
WorkingDirectory=$dir
# SIGTERM goes to smoothserve alone: it drains and stops its instances
# itself; after TimeoutStopSec, SIGKILL goes to every process left. When
# smoothserve exits or crashes on its own, the SIGTERM step has no one to
# signal, so what is left (the instances) gets SIGKILL at once: under
# systemd a crash takes the instances with it and Restart= starts them
# afresh. (Outside systemd, smoothtool start adopts the instances a crashed
# smoothserve left. KillMode=process would keep them for adoption here too,
# but then SIGKILL after a stop that timed out reaches smoothserve alone.)
KillMode=mixed
# Longest start_timeout $max_start s + 60 s.
TimeoutStartSec=$timeout_start
# UpgradeDrainTimeout $upgrade_drain s + 2 x longest stop_timeout $max_stop s + longest kill_timeout $max_kill s + 20 s.
TimeoutStopSec=$timeout_stop
Restart=on-failure
RestartSec=1
LimitNOFILE=65536
# A daemon started by an upgrade runs its start in the idle scheduling class,
# then goes back to the normal class at its nice value: a User= without
# CAP_SYS_NICE may do so within this limit.
LimitNICE=+0
EOF
	[ -z "$user" ] || echo "User=$user"
	cat <<EOF

[Install]
WantedBy=multi-user.target
EOF
}

# The logs: smoothserve prints their logrotate configuration itself, from
# the configuration it reads (the access logs wherever they are, reopened
# on SIGUSR1 sent to the main process only; the instances' own logs,
# LogDir/NAME.log, which they hold open: copied and truncated).
logrotate_conf() {
	local conf
	conf=$("$binary" --config "$config" --print-logrotate "$name") || return 1
	printf '%s\n%s\n' "$marker" "$conf"
}

if [ "$action" = print ]; then
	unit
	exit 0
fi
if [ "$action" = print-logrotate ]; then
	logrotate_conf
	exit 0
fi

ours || die "$unit_file was not written by $prog: choose another --name, or remove it yourself"
umask 022
unit >"$unit_file.tmp"
chmod 0644 "$unit_file.tmp"
mv -f "$unit_file.tmp" "$unit_file"
echo "wrote $unit_file"
if [ -d /etc/logrotate.d ] && { [ ! -e "$logrotate_file" ] || grep -qxF "$marker" "$logrotate_file"; }; then
	if conf=$(logrotate_conf); then
		printf '%s\n' "$conf" >"$logrotate_file"
		echo "wrote $logrotate_file"
	else
		# An earlier one of ours would rotate by the old configuration.
		rm -f "$logrotate_file"
		echo "$prog: warning: no $logrotate_file (the line above says why): rotate the logs yourself" >&2
	fi
fi
systemctl daemon-reload
systemctl enable "$name"
if systemctl is-active --quiet "$name"; then
	echo "$name is already running: to move it onto the new binary without dropping a request, run: systemctl reload $name"
	exit 0
fi
systemctl start "$name" || die "$name did not start: journalctl -u $name says why"
echo "$name is running. Upgrade: systemctl reload $name; status: systemctl status $name; log: journalctl -u $name"
