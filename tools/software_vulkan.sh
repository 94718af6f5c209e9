#!/bin/sh
# Unpack Mesa's lavapipe (a Vulkan driver that runs on the CPU) from Debian bookworm-backports into
# ~/.cache/edgeship/vulkan/, installing nothing system-wide, so that LiteRT's GPU accelerator (WebGPU
# through Dawn, on Vulkan) finds an adapter on a machine without a GPU. Bookworm's own Mesa 22.3 is too
# old for Dawn ("Vulkan shaderUniform*ArrayDynamicIndexing required"); Mesa 25 from backports is not.
# The GPU code path then runs for real, on the CPU: it proves the path and its parity, not GPU speed.
#
# Usage: tools/software_vulkan.sh            (then export the two variables it prints)
# The gpu-marked tests find the unpacked driver by themselves. Needs apt-get and dpkg (Debian 12).
set -eu

MESA=${MESA_VERSION:-25.0.7-2~bpo12+1}
DRM=${DRM_VERSION:-2.4.123-1~bpo12+1}
CACHE=${EDGESHIP_VULKAN_CACHE:-$HOME/.cache/edgeship/vulkan}
TARGET="$CACHE/mesa-$(echo "$MESA" | tr '~+' '__')"
ICD="$TARGET/root/usr/share/vulkan/icd.d/lvp_icd.json"
LIBS="$TARGET/root/usr/lib/x86_64-linux-gnu"

if [ ! -f "$ICD" ]; then
    work="$TARGET.partial"
    rm -rf "$work"
    mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs" "$work/root"
    printf '%s\n' "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-backports main" > "$work/sources.list"
    # A private apt state: the system's sources and package lists stay as they are.
    set -- -o Dir::Etc::sourcelist="$work/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
        -o Dir::State::Lists="$work/lists" -o Dir::Cache::Archives="$work/archives"
    apt-get "$@" -o APT::Sandbox::User=root -qq update
    (cd "$work/debs" && apt-get "$@" -o APT::Sandbox::User=root -qq download "mesa-vulkan-drivers=$MESA" "libdrm2=$DRM" "libdrm-amdgpu1=$DRM" \
        libvulkan1 vulkan-tools libxcb-present0 libxcb-randr0 libxcb-sync1 libxcb-xfixes0 libxcb-shm0)
    for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done
    sed -i "s#\"library_path\": \"[^\"]*\"#\"library_path\": \"$LIBS/libvulkan_lvp.so\"#" \
        "$work/root/usr/share/vulkan/icd.d/lvp_icd.json"
    sed -i "s#$work#$TARGET#" "$work/root/usr/share/vulkan/icd.d/lvp_icd.json"
    rm -rf "$work/lists" "$work/archives" "$work/debs"
    mv "$work" "$TARGET"
fi

echo "export LD_LIBRARY_PATH=$LIBS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export VK_ICD_FILENAMES=$ICD"
LD_LIBRARY_PATH="$LIBS" VK_ICD_FILENAMES="$ICD" "$TARGET/root/usr/bin/vulkaninfo" --summary 2>/dev/null \
    | grep -E "deviceName|driverInfo" >&2 || true
