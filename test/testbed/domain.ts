// Domain XML of the test guest: direct kernel boot, N SATA CD-ROMs, the serial console appended
// to a file on the shared file system (both hosts write the same path, so one log spans
// migrations), no network, no display.
import type { Accelerator, GuestImage } from './guest.js';

export interface CdromSpec {
  /** ISO image; omit for an empty drive. */
  readonly source?: string;
  /** sda, sdb, …; default by position. */
  readonly target?: string;
  /** 'sata' (default; swapped in place, no hotplug) or 'scsi' (virtio-scsi; hot-pluggable). */
  readonly bus?: 'sata' | 'scsi';
}

export interface DomainOptions {
  readonly name: string;
  /** MiB; default: what the guest image needs (256 for the base guest; the migration bench uses 512). */
  readonly memoryMiB?: number;
  /**
   * Boot this guest image instead of the test bed's own (e.g. the fat variant from
   * ensureGuest({ variant: 'fat' }) on the run's shared, base-variant test bed).
   */
  readonly guest?: Pick<GuestImage, 'kernel' | 'initrd' | 'cmdline' | 'memoryMiB'>;
  readonly vcpus?: number;
  /** CD-ROM drives (a number = that many empty drives). Default: one empty drive. */
  readonly cdroms?: number | readonly CdromSpec[];
  /** Extra kernel command-line words. */
  readonly cmdlineExtra?: string;
  readonly machine?: 'q35' | 'pc';
  /** Add a virtio-scsi controller (index 0) so CD-ROMs can be hot-plugged; default true. */
  readonly virtioScsi?: boolean;
}

export interface DomainContext {
  readonly guest: Pick<GuestImage, 'kernel' | 'initrd' | 'cmdline' | 'memoryMiB'>;
  readonly accelerator: Pick<Accelerator, 'domainType'>;
  /** Path of the console log for this domain. */
  readonly consoleLog: string;
}

export function sataTarget(index: number): string {
  let name = '';
  for (let n = index; n >= 0; n = Math.floor(n / 26) - 1) name = String.fromCharCode(97 + (n % 26)) + name;
  return `sd${name}`;
}

export function buildDomainXml(options: DomainOptions, context: DomainContext): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(options.name)) throw new Error(`invalid domain name ${JSON.stringify(options.name)}`);
  const cdroms: readonly CdromSpec[] =
    typeof options.cdroms === 'number' ? Array.from({ length: options.cdroms }, () => ({})) : (options.cdroms ?? [{}]);
  const disks = cdroms.map((cd, index) =>
    [
      `    <disk type='file' device='cdrom'>`,
      `      <driver name='qemu' type='raw'/>`,
      ...(cd.source ? [`      <source file='${xml(cd.source)}'/>`] : []),
      `      <target dev='${xml(cd.target ?? sataTarget(index))}' bus='${cd.bus ?? 'sata'}'/>`,
      `      <readonly/>`,
      `    </disk>`,
    ].join('\n'),
  );
  const guest = options.guest ?? context.guest;
  const cmdline = [guest.cmdline, options.cmdlineExtra].filter(Boolean).join(' ');
  return `<domain type='${context.accelerator.domainType}'>
  <name>${xml(options.name)}</name>
  <memory unit='MiB'>${options.memoryMiB ?? guest.memoryMiB ?? 256}</memory>
  <vcpu>${options.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='${options.machine ?? 'q35'}'>hvm</type>
    <kernel>${xml(guest.kernel)}</kernel>
    <initrd>${xml(guest.initrd)}</initrd>
    <cmdline>${xml(cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${disks.join('\n')}
    <controller type='usb' model='none'/>
${options.virtioScsi === false && !cdroms.some((cd) => cd.bus === 'scsi') ? '' : "    <controller type='scsi' index='0' model='virtio-scsi'/>\n"}    <serial type='file'>
      <source path='${xml(context.consoleLog)}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='${xml(context.consoleLog)}' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

function xml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/**
 * Device XML of a virtio-scsi CD-ROM for `virsh attach-device --live` (the hotplug fallback), on
 * the domain's controller 0 at `unit`. The address is explicit: otherwise libvirt derives one from
 * the target name and may want a new controller, which a running q35 guest has no PCI slot for.
 */
export function scsiCdromXml(source: string, target: string, unit = 0): string {
  return `<disk type='file' device='cdrom'>
  <driver name='qemu' type='raw'/>
  <source file='${xml(source)}'/>
  <target dev='${xml(target)}' bus='scsi'/>
  <readonly/>
  <address type='drive' controller='0' bus='0' target='0' unit='${unit}'/>
</disk>
`;
}
