#!/bin/bash
# Runs as PID 1 inside the guest rootfs: mount the shares, run /results/job.sh, record its
# output and exit code in the writable results share, then power off.
export PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C.UTF-8 LANG=C.UTF-8
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm /src /results
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose src /src
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /results
hostname guest
ip link set lo up 2>/dev/null
# No udev in the guest: LVM must neither wait for it nor ask it for the device list. No dmeventd
# either (monitoring off), and no metadata backups (each costs about 0.5 s under TCG).
cat > /etc/lvm/lvm.conf <<'LVM'
activation {
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}
backup {
    backup = 0
    archive = 0
}
devices {
    obtain_device_list_from_udev = 0
}
LVM
mkdir -p /run/lock /run/lvm
export STORAGE_IN_GUEST=1
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH=/results/site:/src
cd /src
echo "guest-job: start $(date +%s.%N)" > /dev/console
bash /results/job.sh > /results/output.log 2>&1 < /dev/null
echo $? > /results/exit_code.tmp
mv /results/exit_code.tmp /results/exit_code
echo "guest-job: done rc=$(cat /results/exit_code)" > /dev/console
sync
umount /results
echo o > /proc/sysrq-trigger
sleep 10
