#!/bin/busybox sh
# /init of the guest initramfs: load the modules, mount the rootfs (virtio-blk /dev/vda, a
# throw-away qemu snapshot) and hand over to /guest-job inside it.
/bin/busybox mkdir -p /proc /sys /dev /newroot /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 0 > /proc/sys/kernel/printk_ratelimit 2>/dev/null
release=$(cat /etc/kernel-release)
while read -r module; do
    insmod "/lib/modules/$release/$module" 2>/dev/null || echo "init: insmod $module failed" >&2
done < /etc/modules.load
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if ! mount -t ext4 -o rw,noatime /dev/vda /newroot; then
    echo "init: cannot mount the rootfs /dev/vda" >&2
    echo o > /proc/sysrq-trigger
fi
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/lib/modules
mount -t tmpfs -o mode=0755 tmpfs /newroot/lib/modules
cp -a /lib/modules/. /newroot/lib/modules/
cp /guest-job /newroot/run/guest-job
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot /bin/bash /run/guest-job
