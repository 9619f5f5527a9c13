/* SPDX-License-Identifier: MIT */
/* What the programs the shipped policies allow can do: one option table per program (and per git
 * subcommand), read the way GNU getopt and git's parse-options read argv (clusters, attached values,
 * unique abbreviations of long options); which options take values, write files or run programs, which
 * operands are outputs; the sed script reader; lexical path normalisation and the path glob matcher. */

#include <fnmatch.h>
#include <pthread.h>

#include "policies-internal.h"

/* Option tables. Tokens are separated by spaces; a token is one option with its aliases separated by
 * "|" (the first one is its canonical name), each alias "-x" or "--name" (or "-name" for programs with
 * whole-word options), followed by "=" (a value: attached or the next word; "==" two words), "?" (a value
 * only when attached: -U5, --color=auto) or nothing; then optionally ":W" (writes the file named by its
 * value, or writes files when it takes none) or ":X" (runs a program or code, or changes the system). */
#define GIT_DIFF_OPTS                                                                                         \
        " -p|--patch -u -s|--no-patch -U?|--unified= --output=:W --output-indicator-new= "                    \
        "--output-indicator-old= --output-indicator-context= --raw --patch-with-raw --indent-heuristic "      \
        "--no-indent-heuristic --minimal --patience --histogram --anchored= --diff-algorithm= --stat? "       \
        "--compact-summary --numstat --shortstat -X?|--dirstat? --cumulative --dirstat-by-file? --summary "   \
        "--patch-with-stat -z --name-only --name-status --submodule? --color? --no-color --color-moved? "     \
        "--no-color-moved --color-moved-ws= --no-color-moved-ws --word-diff? --word-diff-regex= "             \
        "--color-words? --no-renames --rename-empty --no-rename-empty --check --ws-error-highlight= "          \
        "--full-index --binary --abbrev? -B?|--break-rewrites? -M?|--find-renames? -C?|--find-copies? "       \
        "--find-copies-harder -D|--irreversible-delete -l= --diff-filter= -S= -G= --find-object= "            \
        "--pickaxe-all --pickaxe-regex -O= --skip-to= --rotate-to= -R --relative? --no-relative -a|--text "    \
        "--ignore-cr-at-eol --ignore-space-at-eol -b|--ignore-space-change -w|--ignore-all-space "            \
        "--ignore-blank-lines -I=|--ignore-matching-lines= --inter-hunk-context= -W|--function-context "      \
        "--exit-code --quiet --ext-diff:X --no-ext-diff --textconv:X --no-textconv --ignore-submodules? "     \
        "--src-prefix= --dst-prefix= --no-prefix --default-prefix --line-prefix= --ita-invisible-in-index "   \
        "--ita-visible-in-index --stat-width= --stat-name-width= --stat-count= --stat-graph-width= "          \
        "--color-moved-ws= -0 -1 -2 -3 --base --ours --theirs --cached|--staged --merge-base --no-index "     \
        "--no-pager-is-global-only-placeholder"

#define GIT_LOG_OPTS                                                                                          \
        GIT_DIFF_OPTS                                                                                         \
        " -n=|--max-count= --skip= --since=|--after= --until=|--before= --author= --committer= --grep= "      \
        "--all-match --invert-grep -i|--regexp-ignore-case -E|--extended-regexp -F|--fixed-strings "          \
        "-P|--perl-regexp --merges --no-merges --min-parents= --max-parents= --no-min-parents "                \
        "--no-max-parents --first-parent --all --branches? --tags? --remotes? --glob= --exclude= --reflog "    \
        "--single-worktree --ignore-missing --bisect --cherry-mark --cherry-pick --left-only --right-only "   \
        "--cherry -g|--walk-reflogs --merge --boundary --simplify-by-decoration --full-history --dense "      \
        "--sparse --simplify-merges --ancestry-path? --date-order --author-date-order --topo-order "          \
        "--reverse --no-walk? --do-walk --pretty? --format= --abbrev-commit --no-abbrev-commit --oneline "     \
        "--encoding= --expand-tabs? --no-expand-tabs --notes? --no-notes --show-notes? --standard-notes "     \
        "--no-standard-notes --show-signature --relative-date --date= --parents --children --left-right "     \
        "--graph --show-linear-break? --follow --decorate? --no-decorate --decorate-refs= "                  \
        "--decorate-refs-exclude= --source --mailmap|--use-mailmap --no-mailmap --full-diff --log-size -L= "  \
        "-m --diff-merges= --no-diff-merges --combined-all-paths -c --cc --dd --remerge-diff -t --count "     \
        "--clear-decorations --no-max-count"

static const prog_spec specs[] = {
        /* programs whose arguments are all data, whatever they look like */
        { "echo", NULL, NULL, PS_ANY }, { "printf", NULL, NULL, PS_ANY }, { "true", NULL, NULL, PS_ANY },
        { "false", NULL, NULL, PS_ANY }, { ":", NULL, NULL, PS_ANY }, { "test", NULL, NULL, PS_ANY },
        { "[", NULL, NULL, PS_ANY }, { "pwd", NULL, NULL, PS_ANY }, { "cd", NULL, NULL, PS_ANY },
        { "ps", NULL, NULL, PS_ANY }, { "jq", NULL, NULL, PS_ANY }, { "type", NULL, NULL, PS_ANY },
        { "which", NULL, NULL, PS_ANY }, { "whoami", NULL, NULL, PS_ANY }, { "uptime", NULL, NULL, PS_ANY },

        { "ls", NULL,
          "-a|--all -A|--almost-all --author -b|--escape --block-size= -B|--ignore-backups -c -C --color? "
          "-d|--directory -D|--dired -f -F|--classify? --file-type --format= --full-time -g "
          "--group-directories-first -G|--no-group -h|--human-readable --si -H|--dereference-command-line "
          "--dereference-command-line-symlink-to-dir --hide= --hyperlink? --indicator-style= -i|--inode "
          "-I=|--ignore= -k|--kibibytes -l -L|--dereference -m -n|--numeric-uid-gid -N|--literal -o "
          "-p -q|--hide-control-chars --show-control-chars -Q|--quote-name --quoting-style= -r|--reverse "
          "-R|--recursive -s|--size -S --sort= --time= --time-style= -t -T=|--tabsize= -u -U -v "
          "-w=|--width= -x -X -Z|--context --zero -1 --help --version",
          0 },
        { "tree", NULL,
          "-a -d -l -f -x -L= -P= -I= --gitignore --ignore-case --matchdirs --metafirst --prune --info "
          "--infofile= --noreport --charset= --filelimit= --dirsfirst --filesfirst -q -N -Q -p -u -g -s -h "
          "--si --du -D --timefmt= -F --inodes --device -v -t -c -U -r --sort= -i -A -S -n -C -X -J -H= -T= "
          "--nolinks --hintro= --houtro= --fromfile -o=:W -R:W --help --version",
          PS_NOABBREV },
        { "stat", NULL,
          "-L|--dereference -f|--file-system -c=|--format= --printf= -t|--terse --cached= --help --version", 0 },
        { "file", NULL,
          "-b|--brief -c|--checking-printout -C|--compile:W -d|--debug -E -e=|--exclude= --exclude-quiet= "
          "--extension -F=|--separator= -f=|--files-from= -h|--no-dereference -i|--mime --mime-type "
          "--mime-encoding -k|--keep-going -l|--list -L|--dereference -m=|--magic-file= -N|--no-pad "
          "-n|--no-buffer -p|--preserve-date -P=|--parameter= -r|--raw -s|--special-files -S|--no-sandbox "
          "-v|--version -z|--uncompress -Z|--uncompress-noreport -0|--print0 --apple --help",
          0 },
        { "du", NULL,
          "-0|--null -a|--all -A|--apparent-size -B=|--block-size= -b|--bytes -c|--total "
          "-D|-H|--dereference-args -d=|--max-depth= --files0-from= -h|--human-readable --inodes -k "
          "-L|--dereference -l|--count-links -m -P|--no-dereference -S|--separate-dirs --si -s|--summarize "
          "-t=|--threshold= --time? --time-style= -X=|--exclude-from= --exclude= -x|--one-file-system "
          "--help --version",
          0 },
        { "df", NULL,
          "-a|--all -B=|--block-size= -h|--human-readable -H|--si -i|--inodes -k -l|--local --no-sync "
          "--output? -P|--portability --sync --total -t=|--type= -T|--print-type -x=|--exclude-type= -v "
          "--help --version",
          0 },
        { "realpath", NULL,
          "-e|--canonicalize-existing -m|--canonicalize-missing -L|--logical -P|--physical -q|--quiet "
          "-s|--strip|--no-symlinks --relative-to= --relative-base= -z|--zero --help --version",
          0 },
        { "readlink", NULL,
          "-f|--canonicalize -e|--canonicalize-existing -m|--canonicalize-missing -n|--no-newline "
          "-q|--quiet -s|--silent -v|--verbose -z|--zero --help --version",
          0 },
        { "basename", NULL, "-a|--multiple -s=|--suffix= -z|--zero --help --version", 0 },
        { "dirname", NULL, "-z|--zero --help --version", 0 },
        { "id", NULL,
          "-a -Z|--context -g|--group -G|--groups -n|--name -r|--real -u|--user -z|--zero --help --version", 0 },
        { "uname", NULL,
          "-a|--all -s|--kernel-name -n|--nodename -r|--kernel-release -v|--kernel-version -m|--machine "
          "-p|--processor -i|--hardware-platform -o|--operating-system --help --version",
          0 },
        { "date", NULL,
          "-d=|--date= --debug -f=|--file= -I?|--iso-8601? --resolution -R|--rfc-email --rfc-3339= "
          "-r=|--reference= -s=|--set=:X -u|--utc|--universal --help --version",
          0 },
        { "hostname", NULL,
          "-a|--alias -A|--all-fqdns -d|--domain -f|--fqdn|--long -i|--ip-address -I|--all-ip-addresses "
          "-s|--short -y|--yp|--nis -F=|--file=:X -b|--boot:X --help --version",
          PS_OPERANDS_X },
        { "free", NULL,
          "-b|--bytes -k|--kibi -m|--mebi -g|--gibi --tebi --pebi --kilo --mega --giga --tera --peta "
          "-h|--human --si -l|--lohi -L|--line -t|--total -v|--committed -s=|--seconds= -c=|--count= "
          "-w|--wide --help --version",
          0 },
        { "cat", NULL,
          "-A|--show-all -b|--number-nonblank -e -E|--show-ends -n|--number -s|--squeeze-blank -t "
          "-T|--show-tabs -u -v|--show-nonprinting --help --version",
          0 },
        { "head", NULL,
          "-c=|--bytes= -n=|--lines= -q|--quiet|--silent -v|--verbose -z|--zero-terminated --help --version",
          PS_NUMERIC },
        { "tail", NULL,
          "-c=|--bytes= -f|--follow? -F -n=|--lines= --max-unchanged-stats= --pid= -q|--quiet|--silent "
          "--retry -s=|--sleep-interval= -v|--verbose -z|--zero-terminated --help --version",
          PS_NUMERIC },
        { "wc", NULL,
          "-c|--bytes -m|--chars -l|--lines --files0-from= -L|--max-line-length -w|--words --total= "
          "--help --version",
          0 },
        { "nl", NULL,
          "-b=|--body-numbering= -d=|--section-delimiter= -f=|--footer-numbering= -h=|--header-numbering= "
          "-i=|--line-increment= -l=|--join-blank-lines= -n=|--number-format= -p|--no-renumber "
          "-s=|--number-separator= -v=|--starting-line-number= -w=|--number-width= --help --version",
          0 },
#define GREP_OPTS                                                                                             \
        "-E|--extended-regexp -F|--fixed-strings -G|--basic-regexp -P|--perl-regexp -e=|--regexp= "           \
        "-f=|--file= -i|-y|--ignore-case --no-ignore-case -v|--invert-match -w|--word-regexp "                \
        "-x|--line-regexp -c|--count --color?|--colour? -L|--files-without-match -l|--files-with-matches "   \
        "-m=|--max-count= -o|--only-matching -q|--quiet|--silent -s|--no-messages -b|--byte-offset "         \
        "-H|--with-filename -h|--no-filename --label= -n|--line-number -T|--initial-tab -Z|--null "          \
        "-z|--null-data -A=|--after-context= -B=|--before-context= -C=|--context= -a|--text -I "             \
        "-D=|--devices= -d=|--directories= -r|--recursive -R|--dereference-recursive -U|--binary "           \
        "--line-buffered --include= --exclude= --exclude-from= --exclude-dir= --binary-files= "              \
        "--no-ignore-case --help -V|--version"
        { "grep", NULL, GREP_OPTS, PS_NUMERIC },
        { "egrep", NULL, GREP_OPTS, PS_NUMERIC },
        { "fgrep", NULL, GREP_OPTS, PS_NUMERIC },
        { "rg", NULL,
          "-i|--ignore-case -s|--case-sensitive -S|--smart-case -w|--word-regexp -x|--line-regexp "
          "-v|--invert-match -c|--count --count-matches -l|--files-with-matches --files-without-match "
          "-n|--line-number -N|--no-line-number -H|--with-filename -I|--no-filename --no-heading --heading "
          "-A=|--after-context= -B=|--before-context= -C=|--context= -g=|--glob= --iglob= -t=|--type= "
          "-T=|--type-not= --type-add= --type-clear= --type-list -e=|--regexp= -f=|--file= -F|--fixed-strings "
          "-u|--unrestricted --hidden --no-hidden --no-ignore --no-ignore-vcs --no-ignore-dot "
          "--no-ignore-global --no-ignore-parent --no-ignore-exclude --no-ignore-files --no-require-git "
          "--ignore-file= --files --json --no-json --color= --colors= -o|--only-matching -r=|--replace= "
          "-m=|--max-count= -d=|--max-depth= --max-filesize= -L|--follow --no-follow -p|--pretty "
          "-P|--pcre2 --no-pcre2 --engine= -U|--multiline --no-multiline --multiline-dotall --sort= --sortr= "
          "--stats --trim --vimgrep --column --no-column -0|--null --null-data -a|--text --no-text "
          "--no-messages -q|--quiet --passthru|--passthrough --context-separator= --no-context-separator "
          "--field-match-separator= --field-context-separator= -M=|--max-columns= --max-columns-preview "
          "--no-config --debug --trace -j=|--threads= -z|--search-zip --no-search-zip "
          "--glob-case-insensitive --include-zero -b|--byte-offset --line-buffered --block-buffered "
          "--crlf --no-crlf -E=|--encoding= --no-encoding --mmap --no-mmap --one-file-system "
          "--path-separator= --pre=:X --pre-glob= --no-pre --hostname-bin=:X --hyperlink-format= "
          "--sort-files -h|--help -V|--version --generate=",
          0 },
        { "diff", NULL,
          "--normal -q|--brief -s|--report-identical-files -c -C=|--context? -u -U=|--unified? -e|--ed "
          "-n|--rcs -y|--side-by-side -W=|--width= --left-column --suppress-common-lines "
          "-p|--show-c-function -F=|--show-function-line= --label= -t|--expand-tabs -T|--initial-tab "
          "--tabsize= --suppress-blank-empty -l|--paginate:X -r|--recursive --no-dereference -N|--new-file "
          "--unidirectional-new-file --ignore-file-name-case --no-ignore-file-name-case -x=|--exclude= "
          "-X=|--exclude-from= -S=|--starting-file= --from-file= --to-file= -i|--ignore-case "
          "-E|--ignore-tab-expansion -Z|--ignore-trailing-space -b|--ignore-space-change "
          "-w|--ignore-all-space -B|--ignore-blank-lines -I=|--ignore-matching-lines= -a|--text "
          "--strip-trailing-cr -D=|--ifdef= --line-format= --old-line-format= --new-line-format= "
          "--unchanged-line-format= --old-group-format= --new-group-format= --changed-group-format= "
          "--unchanged-group-format= --horizon-lines= -d|--minimal --speed-large-files --color? --palette= "
          "--no-ignore-file-name-case --help -v|--version",
          0 },
        { "cmp", NULL,
          "-b|--print-bytes -i=|--ignore-initial= -l|--verbose -n=|--bytes= -s|--quiet|--silent --help "
          "-v|--version",
          0 },
        { "sort", NULL,
          "-b|--ignore-leading-blanks -d|--dictionary-order -f|--ignore-case -g|--general-numeric-sort "
          "-i|--ignore-nonprinting -M|--month-sort -h|--human-numeric-sort -n|--numeric-sort "
          "-R|--random-sort --random-source= -r|--reverse --sort= -V|--version-sort --batch-size= "
          "-c|--check? -C --compress-program=:X --debug --files0-from= -k=|--key= -m|--merge "
          "-o=|--output=:W -s|--stable -S=|--buffer-size= -t=|--field-separator= -T=|--temporary-directory= "
          "--parallel= -u|--unique -z|--zero-terminated --help --version",
          0 },
        { "uniq", NULL,
          "-c|--count -d|--repeated -D|--all-repeated? -f=|--skip-fields= --group? -i|--ignore-case "
          "-s=|--skip-chars= -u|--unique -z|--zero-terminated -w=|--check-chars= --help --version",
          PS_OUT2 },
        { "cut", NULL,
          "-b=|--bytes= -c=|--characters= -d=|--delimiter= -f=|--fields= -n --complement -s|--only-delimited "
          "--output-delimiter= -z|--zero-terminated --help --version",
          0 },
        { "tr", NULL, "-c|-C|--complement -d|--delete -s|--squeeze-repeats -t|--truncate-set1 --help --version",
          0 },
        { "column", NULL,
          "-t|--table -s=|--separator= -o=|--output-separator= -c=|--output-width= -x|--fillrows -J|--json "
          "-N=|--table-columns= -l=|--table-columns-limit= -R=|--table-right= -T=|--table-truncate= "
          "-E=|--table-noextreme= -W=|--table-wrap= -H=|--table-hide= -O=|--table-order= -n=|--table-name= "
          "-r=|--tree= -i=|--tree-id= -p=|--tree-parent= -e|--table-header-repeat -L|--keep-empty-lines "
          "-d|--table-noheadings -S=|--use-spaces= -h|--help -V|--version",
          0 },
        { "xxd", NULL,
          "-a|-autoskip -b|-bits -C|-capitalize -c=|-cols= -E|-EBCDIC -e -g=|-groupsize= -h|-help "
          "-i|-include -l=|-len= -n=|-name= -o=|-offset= -p|-ps|-postscript|-plain -r|-revert -R= "
          "-s=|-seek= -u -d -v|-version",
          PS_WHOLE | PS_OUT2 },
        { "od", NULL,
          "-A=|--address-radix= --endian= -j=|--skip-bytes= -N=|--read-bytes= -S?|--strings? -t=|--format= "
          "-v|--output-duplicates -w?|--width? --traditional -a -b -c -d -f -i -l -o -s -x --help --version",
          0 },
        { "hexdump", NULL,
          "-b|--one-byte-octal -X|--one-byte-hex -c|--one-byte-char -C|--canonical -d|--two-bytes-decimal "
          "-o|--two-bytes-octal -x|--two-bytes-hex -e=|--format= -f=|--format-file= -L?|--color? "
          "-n=|--length= -s=|--skip= -v|--no-squeezing -h|--help -V|--version",
          0 },
#define SUM_OPTS                                                                                              \
        "-b|--binary -c|--check --tag -t|--text -z|--zero --ignore-missing --quiet --status --strict "        \
        "-w|--warn --help --version"
        { "md5sum", NULL, SUM_OPTS, 0 },
        { "sha1sum", NULL, SUM_OPTS, 0 },
        { "sha256sum", NULL, SUM_OPTS, 0 },
        { "sha512sum", NULL, SUM_OPTS, 0 },
        { "find", NULL,
          "-H -L -P -D= -O? -name= -iname= -path= -ipath= -wholename= -iwholename= -regex= -iregex= -lname= "
          "-ilname= -type= -xtype= -maxdepth= -mindepth= -newer= -anewer= -cnewer= -newermt= -newerct= "
          "-neweraa= -newerat= -newermm= -newercc= -newerBt= -mtime= -atime= -ctime= -mmin= -amin= -cmin= "
          "-used= -size= -perm= -user= -group= -uid= -gid= -links= -inum= -samefile= -fstype= -regextype= "
          "-empty -readable -writable -executable -nouser -nogroup -print -print0 -printf= -ls -prune -quit "
          "-true -false -not|! -and|-a -or|-o ( ) , -depth|-d -xdev|-mount -follow -noleaf -daystart "
          "-ignore_readdir_race -noignore_readdir_race -warn -nowarn -context= -help|--help -version|--version "
          "-delete:W -fprint=:W -fprint0=:W -fls=:W -fprintf==:W",
          PS_WHOLE },
        { "mkdir", NULL, "-m=|--mode= -p|--parents -v|--verbose -Z --context? --help --version", 0 },
        { "touch", NULL,
          "-a -c|--no-create -d=|--date= -f -h|--no-dereference -m -r=|--reference= -t= --time= --help "
          "--version",
          0 },
        { "sed", NULL,
          "-n|--quiet|--silent --debug -e=|--expression= -f=|--file=:X -i?|--in-place?:W -l=|--line-length= "
          "--posix -E|-r|--regexp-extended -s|--separate --sandbox -u|--unbuffered -z|--null-data|--zero-terminated "
          "--follow-symlinks -b|--binary --help --version",
          PS_SED },
        { "rm", NULL,
          "-f|--force -i -I --interactive? --one-file-system --no-preserve-root --preserve-root? "
          "-r|-R|--recursive -d|--dir -v|--verbose --help --version",
          0 },

        /* git: "git" is its options before the subcommand; the subcommands the shipped policies name */
        { "git", NULL,
          "-C= -c=:X --config-env=:X --exec-path?:X --git-dir=:X --work-tree=:X --namespace= --no-pager|-P "
          "-p|--paginate --bare --no-replace-objects --literal-pathspecs --glob-pathspecs --noglob-pathspecs "
          "--icase-pathspecs --no-optional-locks --no-lazy-fetch --no-advice --html-path --man-path "
          "--info-path --version --help",
          PS_NOPERMUTE },
        { "git", "status",
          "-s|--short -b|--branch --show-stash --porcelain? --long -v|--verbose -u?|--untracked-files? "
          "--ignore-submodules? --ignored? -z --column? --no-column --ahead-behind --no-ahead-behind "
          "--renames --no-renames --find-renames?",
          0 },
        { "git", "log", GIT_LOG_OPTS, PS_NUMERIC },
        { "git", "show", GIT_LOG_OPTS, PS_NUMERIC },
        { "git", "diff", GIT_DIFF_OPTS, 0 },
        { "git", "blame",
          "-b --root --show-stats -L= -l -t -S= --reverse= --first-parent -p|--porcelain --line-porcelain "
          "--incremental --encoding= --contents= --date= --progress --no-progress -M? -C? --ignore-rev= "
          "--ignore-revs-file= --color-lines --color-by-age -h -c --score-debug -f|--show-name "
          "-n|--show-number -s -e|--show-email -w --abbrev=",
          0 },
        { "git", "rev-parse",
          "--git-dir --show-toplevel --abbrev-ref? --short? --verify -q|--quiet --symbolic "
          "--symbolic-full-name --all --branches? --tags? --remotes? --is-inside-work-tree "
          "--is-inside-git-dir --is-bare-repository --is-shallow-repository --show-cdup --show-prefix "
          "--git-common-dir --absolute-git-dir --since= --after= --until= --before= --default= --prefix= "
          "--sq --sq-quote --not --local-env-vars --path-format= --git-path= "
          "--show-superproject-working-tree --shared-index-path --show-object-format? --show-ref-format "
          "--resolve-git-dir= --parseopt --stuck-long --keep-dashdash --stop-at-non-option --flags "
          "--no-flags --revs-only --no-revs --disambiguate= --exclude= --glob=",
          PS_NOABBREV },
        { "git", "ls-files",
          "-c|--cached -d|--deleted -m|--modified -o|--others -i|--ignored -s|--stage -u|--unmerged "
          "-k|--killed -z -t -v -f --directory --no-empty-directory --eol --deduplicate -x=|--exclude= "
          "-X=|--exclude-from= --exclude-per-directory= --exclude-standard --error-unmatch --with-tree= "
          "--full-name --recurse-submodules --abbrev? --debug --sparse --format=",
          0 },
        { "git", "branch",
          "-a|--all -r|--remotes -v|--verbose -l|--list --contains? --no-contains? --merged? --no-merged? "
          "--points-at= --sort= --format= --color? --no-color --column? --no-column --show-current "
          "-i|--ignore-case --omit-empty --abbrev= --no-abbrev",
          0 },
        { "git", "remote", "-v|--verbose", 0 },
        { "git", "add",
          "-n|--dry-run -v|--verbose -f|--force -i|--interactive:X -p|--patch:X -e|--edit:X -u|--update "
          "-A|--all|--no-ignore-removal --no-all|--ignore-removal -N|--intent-to-add --refresh "
          "--ignore-errors --ignore-missing --sparse --no-warn-embedded-repo --renormalize --chmod= "
          "--pathspec-from-file= --pathspec-file-nul",
          0 },
        { "git", "commit",
          "-m=|--message= -a|--all -p|--patch:X -C=|--reuse-message= -c=|--reedit-message=:X --fixup= "
          "--squash= --reset-author --short --branch --porcelain --long -z|--null -F=|--file= --author= "
          "--date= -t=|--template=:X -s|--signoff --no-signoff --trailer= -n|--no-verify --verify "
          "-e|--edit:X --no-edit --allow-empty --allow-empty-message --cleanup= --amend -i|--include "
          "-o|--only --pathspec-from-file= --pathspec-file-nul -u?|--untracked-files? -v|--verbose "
          "-q|--quiet --dry-run --status --no-status -S?|--gpg-sign? --no-gpg-sign",
          0 },
        { "git", "reset",
          "--hard --soft --mixed --merge --keep -q|--quiet -p|--patch -N|--intent-to-add --no-refresh "
          "--refresh --recurse-submodules? --no-recurse-submodules --pathspec-from-file= --pathspec-file-nul",
          0 },
        { "git", "push",
          "-f|--force --force-with-lease? --no-force-with-lease --force-if-includes --all|--branches "
          "--mirror --tags --follow-tags -n|--dry-run --porcelain -d|--delete -u|--set-upstream --atomic "
          "--no-verify --verify --receive-pack=:X --exec=:X --repo= -o=|--push-option= --signed? --no-signed "
          "-q|--quiet -v|--verbose --progress --prune --thin --no-thin -4|--ipv4 -6|--ipv6 "
          "--recurse-submodules=",
          0 },
        { "git", "clean",
          "-d -f|--force -i|--interactive -n|--dry-run -q|--quiet -e=|--exclude= -x -X", 0 },
};

/* ---- reading a table ---- */

typedef struct alias {
        const char *name; /* without dashes */
        size_t len;
        unsigned dashes;
        char arg; /* 0, '=' or '?' */
        unsigned nvals;
} alias;

/* Reads the alias at *pp (inside a token); returns false at the end of the token. */
static bool next_alias(const char **pp, alias *a)
{
        const char *p = *pp;

        if (!*p || *p == ' ' || *p == ':')
                return false;
        if (*p == '|')
                p++;
        *a = (alias){};
        while (*p == '-')
                a->dashes++, p++;
        a->name = p;
        if (a->dashes == 0 && (*p == '!' || *p == '(' || *p == ')' || *p == ','))
                p++; /* find's operators */
        else
                while (*p && !strchr(" |=?:", *p))
                        p++;
        a->len = (size_t) (p - a->name);
        if (*p == '?') {
                a->arg = '?';
                p++;
        }
        while (*p == '=') {
                a->arg = '=';
                a->nvals++;
                p++;
        }
        *pp = p;
        return true;
}

static char token_effect(const char *tok)
{
        const char *e = tok + strcspn(tok, " :");
        return *e == ':' ? e[1] : 0;
}

/* Fills O from the token at TOK, the alias that matched being A. */
static void fill(const char *tok, const alias *a, spec_opt *o)
{
        alias c;
        const char *p = tok;

        next_alias(&p, &c);
        *o = (spec_opt){ .canon = c.name, .canon_len = c.len, .canon_short = c.dashes == 1 && c.len == 1,
                         .arg = a->arg, .nvals = a->nvals, .effect = token_effect(tok), .found = true };
}

static const char *next_token(const char *p)
{
        p += strcspn(p, " ");
        while (*p == ' ')
                p++;
        return p;
}

/* The tables parsed once (thread-safe, on first use): per table, its aliases with the option they name. */
typedef struct parsed_alias {
        alias a;
        spec_opt opt; /* filled as if this alias matched */
} parsed_alias;

typedef struct parsed_spec {
        parsed_alias *aliases; /* sorted by dashes, then name: a prefix's matches are adjacent */
        size_t n;
        short by_letter[128]; /* index + 1 of the alias "-x" */
} parsed_spec;

static int alias_cmp(const void *x, const void *y)
{
        const alias *a = &((const parsed_alias *) x)->a, *b = &((const parsed_alias *) y)->a;
        int k;

        if (a->dashes != b->dashes)
                return a->dashes < b->dashes ? -1 : 1;
        k = memcmp(a->name, b->name, MIN(a->len, b->len));
        return k ? k : a->len < b->len ? -1 : a->len > b->len;
}

static parsed_spec parsed[ELEMENTSOF(specs)];
static pthread_once_t parsed_once = PTHREAD_ONCE_INIT;

static void parse_specs(void)
{
        for (size_t i = 0; i < ELEMENTSOF(specs); i++) {
                parsed_spec *ps = &parsed[i];
                size_t cap = 0;
                if (!specs[i].opts)
                        continue;
                for (const char *t = specs[i].opts; *t; t = next_token(t)) {
                        const char *p = t;
                        alias a;
                        while (next_alias(&p, &a)) {
                                if (ps->n >= cap) {
                                        parsed_alias *g = reallocarray(ps->aliases, cap = cap * 2 + 64, sizeof(*g));
                                        if (!g)
                                                abort(); /* static tables, parsed once at start: cannot fail later */
                                        ps->aliases = g;
                                }
                                parsed_alias *pa = &ps->aliases[ps->n++];
                                pa->a = a;
                                fill(t, &a, &pa->opt);
                        }
                }
                qsort(ps->aliases, ps->n, sizeof(parsed_alias), alias_cmp);
                for (size_t k = 0; k < ps->n; k++) {
                        const alias *a = &ps->aliases[k].a;
                        if (a->dashes == 1 && a->len == 1 && (unsigned char) a->name[0] < 128)
                                ps->by_letter[(unsigned char) a->name[0]] = (short) (k + 1);
                }
        }
}

int spec_lookup(const prog_spec *ps, const char *name, size_t len, unsigned dashes, spec_opt *ret)
{
        const parsed_alias *match = NULL;
        bool ambiguous = false;

        *ret = (spec_opt){};
        if (!ps || !ps->opts)
                return 0;
        pthread_once(&parsed_once, parse_specs);
        const parsed_spec *t = &parsed[ps - specs];
        if (dashes == 1 && len == 1 && !(ps->flags & PS_WHOLE)) {
                unsigned char c = (unsigned char) name[0];
                if (c >= 128 || !t->by_letter[c])
                        return 0;
                *ret = t->aliases[t->by_letter[c] - 1].opt;
                return 1;
        }
        /* the first alias not below NAME: an exact match, or the first of those NAME abbreviates */
        size_t lo = 0, hi = t->n;
        parsed_alias key = { .a = { .name = name, .len = len, .dashes = dashes } };
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (alias_cmp(&t->aliases[mid], &key) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (size_t i = lo; i < t->n; i++) {
                const parsed_alias *pa = &t->aliases[i];
                const alias *a = &pa->a;
                if (a->dashes != dashes || a->len < len || !strneq(a->name, name, len))
                        break;
                if (a->len == len) {
                        *ret = pa->opt;
                        return 1;
                }
                /* GNU getopt_long and git accept any unique prefix of a long option */
                if (dashes == 2 && !(ps->flags & (PS_WHOLE | PS_NOABBREV)) && len > 0 && a->len > len &&
                    strneq(a->name, name, len)) {
                        if (match && match->opt.canon != pa->opt.canon)
                                ambiguous = true;
                        match = pa;
                }
        }
        if (match && !ambiguous) {
                *ret = match->opt;
                return 1;
        }
        return ambiguous ? -EAGAIN : 0;
}

bool spec_has_effects(const prog_spec *ps)
{
        if (!ps)
                return false;
        if (ps->flags & (PS_OUT2 | PS_SED | PS_OPERANDS_X))
                return true;
        return ps->opts && strstr(ps->opts, ":W") ? true : ps->opts && strstr(ps->opts, ":X");
}

const prog_spec *spec_find(const char *name, const char *sub)
{
        for (size_t i = 0; i < ELEMENTSOF(specs); i++)
                if (streq(specs[i].name, name) && (sub ? specs[i].sub && streq(specs[i].sub, sub) : !specs[i].sub))
                        return &specs[i];
        return NULL;
}

/* ---- sed scripts ---- */

/* From the delimiter D at *I to the next unescaped D; false when there is none. */
static bool skip_delimited(const char *s, size_t n, size_t *i, char d)
{
        for ((*i)++; *i < n && s[*i] != d; (*i)++)
                if (s[*i] == '\\')
                        (*i)++;
        return *i < n;
}

/* 'W' when the script writes files (w, W, s///w), 'X' when it runs commands (e, s///e) or cannot be read,
 * 0 when it only edits the stream. */
char sed_script_effect(const char *s)
{
        size_t i = 0, n = strlen(s);

        for (;;) {
                while (i < n && strchr(" \t\n;", s[i]))
                        i++;
                if (i >= n)
                        return 0;
                /* addresses: numbers, $, /re/, \cREc, first~step, addr1,addr2, +N, ~N, !, I, M */
                for (;;) {
                        char c = s[i];
                        if (c == '/' || c == '\\') {
                                char d = c == '\\' ? s[++i] : '/';
                                if (!d || !skip_delimited(s, n, &i, d))
                                        return 'X';
                                i++;
                        } else if ((c >= '0' && c <= '9') || (c && strchr("$,~+!IM \t", c)))
                                i++;
                        else
                                break;
                }
                if (i >= n)
                        return 0;
                char cmd = s[i++];
                switch (cmd) {
                case '{': case '}': case '=': case 'd': case 'D': case 'g': case 'G': case 'h': case 'H':
                case 'n': case 'N': case 'p': case 'P': case 'x': case 'z': case 'F': case 'l': case 'L':
                case 'q': case 'Q':
                        while (i < n && s[i] >= '0' && s[i] <= '9')
                                i++;
                        break;
                case '#': case ':': case 'b': case 't': case 'T': case 'r': case 'R': case 'v':
                        /* a label, a file to read or a comment: up to the end of the line (labels also ";") */
                        while (i < n && s[i] != '\n' && !(cmd != '#' && cmd != 'r' && cmd != 'R' && s[i] == ';'))
                                i++;
                        break;
                case 'a': case 'i': case 'c':
                        while (i < n && s[i] != '\n')
                                i += s[i] == '\\' ? 2 : 1;
                        break;
                case 'e':
                        return 'X';
                case 'w': case 'W':
                        return 'W';
                case 's': case 'y': {
                        char d = s[i];
                        if (!d || d == '\n' || d == '\\')
                                return 'X';
                        for (int part = 0; part < 2; part++)
                                if (!skip_delimited(s, n, &i, d))
                                        return 'X';
                        i++;
                        if (cmd == 's')
                                for (; i < n && !strchr(";\n}", s[i]); i++) {
                                        if (s[i] == 'e')
                                                return 'X';
                                        if (s[i] == 'w')
                                                return 'W';
                                        if (!strchr("gpiImM0123456789 \t", s[i]))
                                                return 'X';
                                }
                        break;
                }
                default:
                        return 'X';
                }
        }
}

/* ---- paths ---- */

char *path_normalize(const char *s)
{
        _cleanup_(sb_done) strbuf b = {};
        size_t n = strlen(s), i = 0, keep = 0; /* keep: bytes of b that ".." may not remove */
        bool abs = s[0] == '/';
        int r = 0;

        if (abs) {
                r = sb_putc(&b, '/');
                keep = 1;
        } else if (s[0] == '~') { /* ~ and ~user are roots too */
                i = strcspn(s, "/");
                r = sb_putn(&b, s, i);
                keep = b.n;
        }
        while (r >= 0 && i < n) {
                while (i < n && s[i] == '/')
                        i++;
                size_t k = strcspn(s + i, "/");
                if (k == 0 || (k == 1 && s[i] == '.')) {
                        i += k;
                        continue;
                }
                if (k == 2 && s[i] == '.' && s[i + 1] == '.') {
                        /* drop the last component unless there is none or it is ".." itself */
                        size_t e = b.n;
                        while (e > keep && b.s[e - 1] != '/')
                                e--;
                        if (b.n > keep && !(b.n - e == 2 && strneq(b.s + e, "..", 2))) {
                                b.n = e > keep ? e - 1 : keep;
                                b.s[b.n] = 0;
                                i += k;
                                continue;
                        }
                        if (abs && b.n == keep) { /* "/.." is "/" */
                                i += k;
                                continue;
                        }
                }
                if (b.n > 0 && b.s[b.n - 1] != '/')
                        r = sb_putc(&b, '/');
                if (r >= 0)
                        r = sb_putn(&b, s + i, k);
                i += k;
        }
        if (r < 0)
                return NULL;
        if (b.n == 0)
                return strdup(".");
        if (startswith(s, "./") && !abs && !startswith(b.s, "../")) /* ./x stays a path, not a name */
                return strjoin("./", b.s);
        return sb_steal(&b);
}

/* [...] at P (P[0] == '['): its length including "]", or 0 when it is not a bracket expression. */
static size_t bracket_len(const char *p)
{
        size_t i = 1;
        if (p[i] == '!' || p[i] == '^')
                i++;
        if (p[i] == ']')
                i++;
        for (; p[i]; i++) {
                if (p[i] == '[' && (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '=')) {
                        const char *e = strstr(p + i + 2, (char[]){ p[i + 1], ']', 0 });
                        if (!e)
                                return 0;
                        i = (size_t) (e - p) + 1;
                } else if (p[i] == ']')
                        return i + 1;
        }
        return 0;
}

bool glob_match(const char *p, const char *s)
{
        for (;;) {
                if (*p == '*') {
                        bool any = p[1] == '*';
                        while (*p == '*')
                                p++;
                        if (!*p)
                                return any || !strchr(s, '/');
                        for (;; s++) {
                                if (glob_match(p, s))
                                        return true;
                                if (!*s || (!any && *s == '/'))
                                        return false;
                        }
                }
                if (!*s)
                        return !*p;
                if (*p == '?') {
                        if (*s == '/')
                                return false;
                        p++, s++;
                        continue;
                }
                if (*p == '[') {
                        size_t k = bracket_len(p);
                        if (k > 0 && k < 128) {
                                char cls[128], ch[2] = { *s, 0 };
                                memcpy(cls, p, k);
                                cls[k] = 0;
                                if (*s == '/' || fnmatch(cls, ch, 0) != 0)
                                        return false;
                                p += k, s++;
                                continue;
                        }
                }
                if (*p == '\\' && p[1])
                        p++;
                if (*p != *s)
                        return false;
                p++, s++;
        }
}
