#!/usr/bin/env bash
# Builds a chatd release into dist/ (make release):
#   chatd-VERSION-OS-ARCH.tar.gz (.zip for Windows): the static binary,
#     README.md, LICENSE, THIRD_PARTY_LICENSES.md
#   chatd_DEBVERSION_ARCH.deb for linux amd64 and arm64, built with dpkg-deb
#   SHA256SUMS of all of them
# The build is reproducible: the same commit gives the same bytes
# (CGO_ENABLED=0, -trimpath, an empty build id, file times and owners from
# the commit, sorted archives). VERSION defaults to git describe.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DIST=${DIST:-dist}
TARGETS=${TARGETS:-"linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64"}
MAINTAINER=${MAINTAINER:-"chatd maintainers <chatd@users.noreply.github.com>"}

if git rev-parse --git-dir >/dev/null 2>&1; then
	VERSION=${VERSION:-$(git describe --tags --always --dirty --match 'v[0-9]*')}
	REVISION=$(git rev-parse HEAD)
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
	DIRTY=false
	[ -z "$(git status --porcelain --untracked-files=no)" ] || DIRTY=true
else
	VERSION=${VERSION:-dev} REVISION="" DIRTY=false
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
fi
export SOURCE_DATE_EPOCH TZ=UTC LC_ALL=C
REVTIME=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
[ -n "$REVISION" ] || REVTIME=""
LDFLAGS="-s -w -buildid= -X main.version=$VERSION -X main.revision=$REVISION -X main.revisionTime=$REVTIME -X main.dirty=$DIRTY"

# Debian versions start with a digit: v1.2.0 -> 1.2.0, v1.2.0-3-gabc ->
# 1.2.0+3.gabc, an untagged abc1234 -> 0~git20260102.abc1234.
if [[ $VERSION =~ ^v?[0-9]+\.[0-9] ]]; then
	DEBVERSION=${VERSION#v}
else
	DEBVERSION="0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$VERSION"
fi
DEBVERSION=$(printf '%s' "$DEBVERSION" | tr -- '-' '+' | sed 's/+g\([0-9a-f]\)/.g\1/')

rm -rf "$DIST"
mkdir -p "$DIST"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Every Go module linked into the binary, with its license text.
third_party() {
	echo "# Third-party licenses"
	echo
	echo "chatd links these Go modules; each is under the license that follows its name."
	"$GO" list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/chatd | sort -u |
		while read -r path ver dir; do
			echo
			echo "## $path $ver"
			echo
			found=""
			for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/NOTICE*; do
				[ -f "$f" ] || continue
				found=1
				echo '```'
				cat "$f"
				echo '```'
			done
			[ -n "$found" ] || echo "(no license file in the module)"
		done
}
third_party >"$stage/THIRD_PARTY_LICENSES.md"

# touch and archive with the commit's time, root owners, sorted names.
stamp() { find "$@" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; }

start=$(date +%s)
for target in $TARGETS; do
	os=${target%/*} arch=${target#*/}
	name="chatd-$VERSION-$os-$arch"
	dir="$stage/$name"
	mkdir -p "$dir"
	exe=chatd
	[ "$os" = windows ] && exe=chatd.exe
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath -buildvcs=false -ldflags "$LDFLAGS" -o "$dir/$exe" ./cmd/chatd
	cp README.md LICENSE "$stage/THIRD_PARTY_LICENSES.md" "$dir/"
	chmod 755 "$dir/$exe"
	chmod 644 "$dir/README.md" "$dir/LICENSE" "$dir/THIRD_PARTY_LICENSES.md"
	stamp "$dir"
	if [ "$os" = windows ]; then
		(cd "$stage" && find "$name" -print | sort | zip -q -X -D "$OLDPWD/$DIST/$name.zip" -@)
	else
		tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --format=gnu \
			-C "$stage" -cf - "$name" | gzip -9 -n >"$DIST/$name.tar.gz"
	fi
	echo "built $name"
done

# The .deb: binary, systemd unit, sysusers entry, default settings, man
# page and docs; postinst makes the chatd user.
deb() {
	local arch=$1 bin=$2 root="$stage/deb-$1"
	install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" \
		"$root/etc/chatd" "$root/usr/share/doc/chatd" "$root/usr/share/man/man1" "$root/usr/share/lintian/overrides"
	install -m 755 "$bin" "$root/usr/bin/chatd"
	sed 's|/usr/local/bin/chatd|/usr/bin/chatd|g; /^#   sudo install/d' deploy/chatd.service >"$root/lib/systemd/system/chatd.service"
	install -m 644 deploy/debian/chatd.sysusers "$root/usr/lib/sysusers.d/chatd.conf"
	install -m 644 deploy/debian/chatd.conf "$root/etc/chatd/chatd.conf"
	install -m 644 deploy/debian/copyright "$root/usr/share/doc/chatd/copyright"
	install -m 644 deploy/debian/lintian-overrides "$root/usr/share/lintian/overrides/chatd"
	gzip -9 -n <README.md >"$root/usr/share/doc/chatd/README.md.gz"
	gzip -9 -n <"$stage/THIRD_PARTY_LICENSES.md" >"$root/usr/share/doc/chatd/THIRD_PARTY_LICENSES.gz"
	gzip -9 -n <deploy/debian/chatd.1 >"$root/usr/share/man/man1/chatd.1.gz"
	{
		printf 'chatd (%s) unstable; urgency=medium\n\n' "$DEBVERSION"
		printf '  * Release %s (revision %s).\n\n' "$VERSION" "${REVISION:-unknown}"
		printf ' -- %s  %s\n' "$MAINTAINER" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
	} | gzip -9 -n >"$root/usr/share/doc/chatd/changelog.gz"
	chmod 644 "$root"/lib/systemd/system/chatd.service "$root"/usr/share/doc/chatd/* "$root"/usr/share/man/man1/*
	install -m 755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
	echo /etc/chatd/chatd.conf >"$root/DEBIAN/conffiles"
	local size
	size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
	sed "s|@VERSION@|$DEBVERSION|; s|@ARCH@|$arch|; s|@MAINTAINER@|$MAINTAINER|; s|@SIZE@|$size|" \
		deploy/debian/control.in >"$root/DEBIAN/control"
	(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | sort | xargs md5sum >DEBIAN/md5sums)
	chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
	find "$root" -type d -exec chmod 755 {} +
	stamp "$root"
	dpkg-deb --root-owner-group -Zxz --build "$root" "$DIST/chatd_${DEBVERSION}_$arch.deb" >/dev/null
	echo "built chatd_${DEBVERSION}_$arch.deb"
}
if command -v dpkg-deb >/dev/null; then
	for arch in amd64 arm64; do
		[ -x "$stage/chatd-$VERSION-linux-$arch/chatd" ] && deb "$arch" "$stage/chatd-$VERSION-linux-$arch/chatd"
	done
else
	echo "no dpkg-deb here: .deb skipped"
fi

(cd "$DIST" && sha256sum -- * >SHA256SUMS)
echo "release $VERSION in $DIST/ ($(($(date +%s) - start))s):"
cat "$DIST/SHA256SUMS"
