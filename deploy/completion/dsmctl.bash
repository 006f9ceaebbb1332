# deploy/completion/dsmctl.bash - bash completion for dsmctl (room: deploy).
# Installed to share/bash-completion/completions/dsmctl; by hand:
#   source deploy/completion/dsmctl.bash
# Completes commands (two words for "region show" and "shared show"),
# dsmctl's own options before or after the command, each command's own
# options, and drain's server ids from 'dsmctl servers --json' when the
# registry answers.

_dsmctl_globals="--registry --registry-password-file --cluster --json --help --version"

# The command typed so far (words that are not options or their values).
_dsmctl_command() {
	local i w cmd=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--registry | --registry-password-file | --cluster) ((i++)) ;;
		-*) ;;
		*) cmd="${cmd:+$cmd }$w" ;;
		esac
	done
	printf '%s' "$cmd"
}

_dsmctl() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmd opts=""

	COMPREPLY=()
	case $prev in
	--registry) COMPREPLY=($(compgen -W "redis://127.0.0.1:6379" -- "$cur")); return ;;
	--registry-password-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--cluster) return ;;
	esac
	cmd=$(_dsmctl_command)
	case $cmd in
	"") opts="status servers regions clients region shared stats drain" ;;
	region) opts="show" ;;
	shared) opts="show" ;;
	stats) opts="--watch --watch= --prometheus" ;;
	drain) opts="--cancel --no-wait --timeout="
		[[ $cur != -* ]] && opts="$opts $(dsmctl servers --json 2>/dev/null |
			python3 -c 'import json, sys; print(" ".join(str(s["id"]) for s in json.load(sys.stdin)))' 2>/dev/null)" ;;
	esac
	[[ $cur == -* ]] && opts="$opts $_dsmctl_globals"
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _dsmctl dsmctl
