# shellcheck shell=sh disable=SC2086,SC2013,SC2231
# (busybox sh in the test guest; every path here is made by this script, without spaces or globs)
# The baseline of bench/ffs-guest: the reference approach FFS improves on: a guest agent that
# polls every CD-ROM once a second, remounts what changed, copies the layers into a fresh view
# (lowest priority first, so higher layers overwrite) and runs the hook. busybox sh.
#
# It arrives in the service layer (bench/poller.sh) and is started by the layer's bench-switch hook
# as `setsid sh /tmp/poller.sh FFS_PID GRACE_S`: it waits GRACE_S seconds (the host lets FFS release
# the drive it is ejecting), stops FFS (SIGTERM: it unmounts), lets go of FFS's media mounts and
# takes the drives over. Console lines: BASE-START, BASE-READY <layers>, BASE-VIEW <gen> p0= t0= t1= t= <layers>,
# and the hook's APP-HOOK-START / APP-HOOK lines (the same hook command FFS runs).
B=/run/baseline
echo "BASE-START $1"
sleep "${2:-5}"
kill -TERM "$1" 2>/dev/null
while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
for m in $(awk '$2 ~ "^/run/recontext-ffs/media/" {print $2}' /proc/mounts); do umount -l "$m"; done
mkdir -p $B/m $B/s
gen=0
winners=-
ready=0
hook() {
  echo APP-HOOK-START > /dev/console
  echo "APP-HOOK $(grep -m1 cache-server $B/ctx/etc/glusterfs/cache.conf) $(grep -m1 remote-host $B/ctx/etc/glusterfs/client.vol)" > /dev/console
}
while :; do
  read -r t0 _ < /proc/uptime
  for d in /sys/block/sr*; do
    n=${d##*/}
    # What is in the drive now (nothing: the digest of no bytes). Context images are small.
    sig=$(dd if=/dev/$n bs=64k count=16 2>/dev/null | md5sum)
    old=
    [ -f $B/s/$n.sig ] && read -r old < $B/s/$n.sig
    [ "$sig" = "$old" ] && continue
    echo "$sig" > $B/s/$n.sig
    if [ -f $B/s/$n.dir ]; then umount -l "$(cat $B/s/$n.dir)"; rmdir "$(cat $B/s/$n.dir)"; rm -f $B/s/$n.dir $B/s/$n.layer; fi
    gen=$((gen + 1))
    dir=$B/m/$n.$gen
    mkdir -p $dir
    if mount -t iso9660 -o ro /dev/$n $dir 2>/dev/null; then
      if [ -f $dir/.recontext/manifest.json ]; then
        echo $dir > $B/s/$n.dir
        l=$(sed -n 's/^ *"layer": *"\([^"]*\)".*/\1/p' $dir/.recontext/manifest.json)
        p=$(sed -n 's/^ *"priority": *\(-*[0-9]*\).*/\1/p' $dir/.recontext/manifest.json)
        echo "$l $gen $p $n $dir" > $B/s/$n.layer
      else
        umount $dir
        rmdir $dir
      fi
    else
      rmdir $dir
    fi
  done
  read -r t1 _ < /proc/uptime
  # The newest medium of each layer wins; older ones are let go (the host ejects them next).
  all=$(cat $B/s/*.layer 2>/dev/null | sort -k1,1 -k2,2nr)
  for n in $(echo "$all" | awk 'NF && $1 == last {print $4} {last = $1}'); do
    umount -l "$(cat $B/s/$n.dir)"
    rm -f $B/s/$n.dir $B/s/$n.layer
  done
  new=$(echo "$all" | awk 'NF && $1 != last {print} {last = $1}')
  key=$(echo "$new" | awk '{printf "%s ", $5}')
  if [ "$key" != "$winners" ]; then
    winners=$key
    v=$B/view.$gen
    mkdir -p $v
    echo "$new" | sort -k3,3n | while read -r l _g p n dir; do [ -n "$dir" ] && cp -a $dir/. $v/; done
    ln -sfn view.$gen $B/ctx
    read -r t _ < /proc/uptime
    # p0: the poll before began, t0: this poll began, t1: drives read (and the changed one mounted), t: view in place (uptime, s)
    echo "BASE-VIEW $gen p0=${p0:-0} t0=$t0 t1=$t1 t=$t $(echo "$new" | awk '{printf "%s:%s ", $1, $3}')" > /dev/console
    [ $ready = 1 ] && hook
    for o in $B/view.*; do [ "$o" = "$v" ] || rm -rf "$o"; done
  fi
  if [ $ready = 0 ]; then
    ready=1
    echo "BASE-READY $(echo "$new" | grep -c .)" > /dev/console
  fi
  p0=$t0
  sleep 1
done
