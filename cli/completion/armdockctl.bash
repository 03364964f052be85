# bash completion for armdockctl(1)                         -*- shell-script -*-

_armdockctl()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion || return
    else
        COMPREPLY=()
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="status upgrade rollback release cancel backups payloads reload watch"
    local global="--bus --docker-socket --version --help"

    case $prev in
        --bus)
            COMPREPLY=($(compgen -W "system user unix:path=" -- "$cur"))
            [[ $COMPREPLY == unix:path= ]] && compopt -o nospace 2>/dev/null
            return ;;
        --docker-socket|--docker|--dockerinit)
            COMPREPLY=($(compgen -f -- "$cur"))
            compopt -o filenames 2>/dev/null
            return ;;
        --sha256|--payload|--signature)
            COMPREPLY=($(compgen -W "docker= dockerinit=" -- "$cur"))
            compopt -o nospace 2>/dev/null
            return ;;
        --timeout|--health-timeout)
            return ;;
    esac

    # The command is the first word that is not an option or an option's value.
    local i command=
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --bus|--docker-socket) ((i++)) ;;
            -*) ;;
            *) command=${words[i]}; break ;;
        esac
    done

    local options
    case $command in
        "") COMPREPLY=($(compgen -W "$commands $global" -- "$cur")); return ;;
        status|backups|payloads) options="--json" ;;
        upgrade) options="--docker --dockerinit --payload --sha256 --signature --allow-downgrade --dry-run --health-timeout --no-wait --timeout" ;;
        rollback) options="--to --no-wait --timeout" ;;
        release) options="--no-wait --timeout" ;;
        *) options="" ;;
    esac
    COMPREPLY=($(compgen -W "$options --help --bus --docker-socket" -- "$cur"))
}
complete -F _armdockctl armdockctl
