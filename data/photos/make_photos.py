#!/usr/bin/env python3
"""Rebuild the training photos in this folder from Debian bookworm packages.

Training photos for `stylize train` only: never use them as test images.

    apt-get update
    python3 -m venv /tmp/pv && /tmp/pv/bin/pip install pillow
    /tmp/pv/bin/python data/photos/make_photos.py --work /tmp/photos-work
    /tmp/pv/bin/python data/photos/make_photos.py --table   # README table rows

Needs root or a writable --work folder, `apt-get download` and `dpkg-deb`
(about 235 MB of packages). Every photo is taken from one file of one
package, resized so that its longest side is at most 512 px (Lanczos, never
upscaled, aspect kept), converted to sRGB/RGB and written as a JPEG of
quality 90 with no metadata (no EXIF, no ICC profile, no comments).
"""
import argparse
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# Debian bookworm package versions the photos were taken from.
PKGS = {
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "lxqt-themes": "1.2.0-1",
    "tuxpaint-data": "1:0.9.28-sdl2-1",
    "gcompris-qt-data": "3.1-2",
    "python3-skimage": "0.19.3-8",
    "python3-sklearn": "1.2.1+dfsg-1",
    "kphotoalbum": "5.9.1-1",
}

LOM = "/usr/share/backgrounds/"
KDE = "/usr/share/wallpapers/"
LXQT = "/usr/share/lxqt/wallpapers/"
TUX = "/usr/share/tuxpaint/templates/"
SKI = "/usr/lib/python3/dist-packages/skimage/data/"
SKL = "/usr/lib/python3/dist-packages/sklearn/datasets/images/"
RCC = "/usr/share/gcompris-qt/rcc/"
GC = ":/gcompris/src/activities/"

# Licence-text locations (files in licenses/ next to this script).
L_LOM = "licenses/lomiri-wallpapers.copyright"
L_KDE = "licenses/plasma-workspace-wallpapers.copyright + licenses/plasma-{}.metadata.json"
L_LXQT = "licenses/lxqt-themes.wallpapers-License + licenses/lxqt-themes.copyright"
L_TUX = "licenses/tuxpaint-data.copyright + licenses/tuxpaint-data.AUTHORS.txt"
L_SKI = "licenses/skimage-data-notes.txt + licenses/python3-skimage.copyright"
L_SKL = "licenses/sklearn-images-README.txt + licenses/python3-sklearn.copyright"
L_GC = "licenses/gcompris-{}-README + licenses/gcompris-qt-data.copyright"
L_KPA = "licenses/kphotoalbum.copyright"

KDE_LIC = "LGPL-3.0 (metadata.json: \"LGPLv3\"); debian/copyright: GPL-2.0-or-later"
LXQT_LIC = "CC-BY-SA-3.0 (upstream License file); debian/copyright: LGPL-2.1-or-later"
PD = "public domain"

# (output file, subject, package, path in package [, resource inside an .rcc], author, licence, licence text)
PHOTOS = [
    # landscapes and nature
    ("landscape_picos_de_europa.jpg", "mountain pasture and limestone peaks, Picos de Europa",
     "lomiri-wallpapers-16.04", LOM + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0", L_LOM),
    ("landscape_autumn_hills.jpg", "autumn forest, meadow and mountain (Aitzgorri)",
     "lomiri-wallpapers-16.04", LOM + "aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0", L_LOM),
    ("landscape_forest_stream.jpg", "stream over rocks in a forest",
     "lomiri-wallpapers-16.04", LOM + "life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0", L_LOM),
    ("landscape_lake_boats_sunset.jpg", "rowing boats on a lake shore at sunset",
     "plasma-workspace-wallpapers", KDE + "EveningGlow/contents/images/2560x1600.jpg", "Ian Hex", KDE_LIC, L_KDE.format("EveningGlow")),
    ("landscape_forest_path.jpg", "path through a dark spruce forest",
     "plasma-workspace-wallpapers", KDE + "Path/contents/images/2560x1600.jpg", "Risto Saukonpää", KDE_LIC, L_KDE.format("Path")),
    ("landscape_lake_dusk.jpg", "calm lake with reeds at dusk",
     "plasma-workspace-wallpapers", KDE + "summer_1am/contents/images/2560x1600.jpg", "Risto Saukonpää", KDE_LIC, L_KDE.format("summer_1am")),
    ("landscape_foggy_field.jpg", "fog over a field and hillside",
     "lxqt-themes", LXQT + "fog.jpg", "stefonarch (LXQt Project Team)", LXQT_LIC, L_LXQT),
    ("landscape_green_hills.jpg", "rolling green hills under a blue sky",
     "lxqt-themes", LXQT + "this-is-not-windows.jpg", "stefonarch (LXQt Project Team)", LXQT_LIC, L_LXQT),
    ("landscape_storm_clouds_mountains.jpg", "storm clouds lit by the sun over a mountain ridge",
     "lxqt-themes", LXQT + "after-the-rain.jpg", "stefonarch (LXQt Project Team)", LXQT_LIC, L_LXQT),
    ("landscape_sea_cliff.jpg", "rocky cliff under a blue sky",
     "tuxpaint-data", TUX + "cliff.jpg", "Bill Kendrick", "GPL-2.0-or-later", L_TUX),
    ("landscape_ocean_waves.jpg", "breaking ocean waves",
     "tuxpaint-data", TUX + "ocean_waves.jpg", "Bill Kendrick", "GPL-2.0-or-later", L_TUX),
    ("landscape_machu_picchu.jpg", "Machu Picchu and Huayna Picchu",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/wonders/machuPicchu.webp",
     "Guillaume Pascal", "CC0-1.0", L_GC.format("explore_monuments")),
    ("landscape_canyon_de_chelly.jpg", "Canyon de Chelly, river and red cliffs",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/usa/canyondeChelly.webp",
     "Nikater", PD, L_GC.format("explore_monuments")),
    ("nature_dandelion_seeds.jpg", "dandelion seed heads in a meadow, backlit",
     "lomiri-wallpapers-16.04", LOM + "seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt, 2018", "CC0-1.0", L_LOM),
    ("nature_fallen_leaf.jpg", "fallen autumn leaves, shallow depth of field",
     "plasma-workspace-wallpapers", KDE + "FallenLeaf/contents/images/2560x1600.jpg", "Martin Klapetek", KDE_LIC, L_KDE.format("FallenLeaf")),
    ("nature_wildflowers.jpg", "meadow of wild flowers",
     "lxqt-themes", LXQT + "flowers.png", "stefonarch (LXQt Project Team)", LXQT_LIC, L_LXQT),
    # streets and cities
    ("city_brandenburg_gate_berlin.jpg", "Brandenburg Gate, Berlin, with passers-by",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/germany/brandenburgGate.webp",
     "Evans1551", PD, L_GC.format("explore_monuments")),
    ("city_berlin_cathedral.jpg", "Berlin Cathedral from the street",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/germany/berlinCathedral.webp",
     "Gary Todd", "CC0-1.0", L_GC.format("explore_monuments")),
    ("city_hawa_mahal_jaipur.jpg", "Hawa Mahal facade, Jaipur",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/india/hawaMahal.webp",
     "Janwiki", PD, L_GC.format("explore_monuments")),
    ("city_gateway_of_india_night.jpg", "Gateway of India, Mumbai, lit at night",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/india/gatewayofIndia.webp",
     "Simon Steinberger", "CC0-1.0", L_GC.format("explore_monuments")),
    ("city_eiffel_tower_paris.jpg", "Eiffel Tower and the Champ de Mars, Paris",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/france/eiffelTower.webp",
     "Tognopop", PD, L_GC.format("explore_monuments")),
    ("city_carcassonne_walls.jpg", "walled medieval city of Carcassonne",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/france/citedeCarcassonne.webp",
     "Petitemontagnedujura", PD, L_GC.format("explore_monuments")),
    ("city_mont_saint_michel.jpg", "Mont-Saint-Michel island town",
     "gcompris-qt-data", RCC + "explore_monuments.rcc", GC + "explore_monuments/resource/france/montStMichel.webp",
     "Ali Sabbagh", "CC0-1.0", L_GC.format("explore_monuments")),
    ("city_summer_palace_beijing.jpg", "pagoda of the Summer Palace above the lake, Beijing",
     "python3-sklearn", SKL + "china.jpg", "danielbuechele (Flickr)", "CC-BY-2.0", L_SKL),
    # people
    ("people_astronaut_portrait.jpg", "astronaut Eileen Collins, NASA portrait",
     "python3-skimage", SKI + "astronaut.png", "NASA", PD, L_SKI),
    ("people_folk_band_on_stage.jpg", "Irish folk band playing on stage",
     "gcompris-qt-data", RCC + "explore_world_music.rcc", GC + "explore_world_music/resource/music/ireland.webp",
     "candyschwartz", "CC-BY-2.0", L_GC.format("explore_world_music")),
    ("people_opera_on_stage.jpg", "opera singers in costume on stage",
     "gcompris-qt-data", RCC + "explore_world_music.rcc", GC + "explore_world_music/resource/music/italy.webp",
     "SoriamuséuM", "CC0-1.0", L_GC.format("explore_world_music")),
    ("people_taiko_festival_night.jpg", "taiko drummers and crowd at a night festival, Japan",
     "gcompris-qt-data", RCC + "explore_world_music.rcc", GC + "explore_world_music/resource/music/japan.webp",
     "takami torao", PD, L_GC.format("explore_world_music")),
    ("people_photographer_tripod.jpg", "man filming with a camera on a tripod (greyscale original)",
     "python3-skimage", SKI + "camera.png", "Lav Varshney", "CC0-1.0", L_SKI),
    # animals
    ("animal_cat_chelsea.jpg", "tabby cat (Chelsea)",
     "python3-skimage", SKI + "chelsea.png", "Stefan van der Walt", "CC0-1.0", L_SKI),
    ("animal_dogs_at_window.jpg", "two dogs looking out of a wooden house",
     "lomiri-wallpapers-16.04", LOM + "friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0", L_LOM),
    ("animal_nuthatch_on_tree.jpg", "nuthatch on a tree trunk",
     "lomiri-wallpapers-20.04", LOM + "Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus, 2021", "CC-BY-SA-3.0", L_LOM),
    ("animal_kingfisher.jpg", "kingfisher on a mossy branch",
     "gcompris-qt-data", RCC + "erase.rcc", GC + "erase/resource/kingfisher.webp", "Frank-2.0", "CC0-1.0", L_GC.format("erase")),
    ("animal_red_panda.jpg", "red panda on a branch",
     "gcompris-qt-data", RCC + "erase.rcc", GC + "erase/resource/red_panda.webp", "Mathias Appel", "CC0-1.0", L_GC.format("erase")),
    ("animal_crab.jpg", "Sally Lightfoot crab on rock",
     "gcompris-qt-data", RCC + "erase.rcc", GC + "erase/resource/crab.webp", "Nosferattus", "CC0-1.0", L_GC.format("erase")),
    ("animal_giraffe.jpg", "giraffe head and neck",
     "gcompris-qt-data", RCC + "erase.rcc", GC + "erase/resource/giraffe.webp", "Sergio Cambelo", PD, L_GC.format("erase")),
    ("animal_horses_herd.jpg", "herd of horses on a grassy hill",
     "gcompris-qt-data", RCC + "explore_farm_animals.rcc", GC + "explore_farm_animals/resource/animals/horse.webp",
     "Seth Zeigler", "CC0-1.0", L_GC.format("explore_farm_animals")),
    ("animal_cow_pasture.jpg", "cow in a pasture",
     "gcompris-qt-data", RCC + "explore_farm_animals.rcc", GC + "explore_farm_animals/resource/animals/cow.webp",
     "Dohduhdah", PD, L_GC.format("explore_farm_animals")),
    ("animal_jellyfish.jpg", "jellyfish in blue light",
     "tuxpaint-data", TUX + "jellyfish.jpg", "Bill Kendrick", "GPL-2.0-or-later", L_TUX),
    # interiors
    ("interior_living_room_wine.jpg", "living room: djembe on a bean bag, wine on a pallet table",
     "lomiri-wallpapers-16.04", LOM + "Wine_by_Jakkub_Mede.jpg", "Jakub Mede, 2018", "CC-BY-4.0", L_LOM),
    ("interior_ceiling_lamps.jpg", "ceiling lamps with a hanging bird figure",
     "lomiri-wallpapers-16.04", LOM + "free_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018", "CC-BY-SA-4.0", L_LOM),
    ("interior_rehearsal_room.jpg", "rehearsal room with drum kit and guitar",
     "gcompris-qt-data", RCC + "explore_world_music.rcc", GC + "explore_world_music/resource/music/america.webp",
     "Tom Harpel", "CC-BY-2.0", L_GC.format("explore_world_music")),
    ("interior_concert_hall_orchestra.jpg", "orchestra playing in a concert hall",
     "gcompris-qt-data", RCC + "explore_world_music.rcc", GC + "explore_world_music/resource/music/orchestra.webp",
     "ABC Informática", PD, L_GC.format("explore_world_music")),
    ("interior_pool_hall.jpg", "billiard room with two players",
     "kphotoalbum", "/usr/share/kphotoalbum/demo/pool.jpg", "KPhotoAlbum authors (Jesper K. Pedersen et al.)", "GPL-2.0-or-later", L_KPA),
    # objects
    ("object_coffee_cup.jpg", "cup of coffee on a saucer, wooden table",
     "python3-skimage", SKI + "coffee.png", "Rachel Michetti", "CC0-1.0", L_SKI),
    ("object_colorful_cups.jpg", "rows of coloured plastic cups",
     "plasma-workspace-wallpapers", KDE + "ColorfulCups/contents/images/2560x1600.jpg", "Dmitri Popov", KDE_LIC, L_KDE.format("ColorfulCups")),
    ("object_fig_on_red_plate.jpg", "halved fig in a red bowl on concrete",
     "lomiri-wallpapers-16.04", LOM + "Picture_0B_by_freespace.jpg", "Trevor \"Freespace\", 2018", "CC-BY-4.0", L_LOM),
    ("object_paintbrushes.jpg", "paintbrushes with coloured bristles",
     "lomiri-wallpapers-16.04", LOM + "Picture_1A_by_freespace.jpg", "Trevor \"Freespace\", 2018", "CC-BY-4.0", L_LOM),
    ("object_wall_clock.jpg", "wall clock face, close-up",
     "lomiri-wallpapers-16.04", LOM + "greentock_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018", "CC-BY-SA-4.0", L_LOM),
    ("object_mill_machine_gears.jpg", "gears of an old wool mill machine",
     "tuxpaint-data", TUX + "wool_mill_machine.jpg", "Bill Kendrick", "GPL-2.0-or-later", L_TUX),
    ("object_rocket_launch.jpg", "Falcon 9 rocket on its launch pad at night (DSCOVR launch)",
     "python3-skimage", SKI + "rocket.jpg", "SpaceX", PD, L_SKI),
    ("object_bata_drums.jpg", "three bata drums on grass",
     "gcompris-qt-data", RCC + "explore_world_music.rcc", GC + "explore_world_music/resource/music/africa.webp",
     "Kenneth Ritchards", PD, L_GC.format("explore_world_music")),
]

# Licence and copyright files copied into licenses/: (package, path in package, name in licenses/)
LICENSE_FILES = [
    ("lomiri-wallpapers-16.04", "/usr/share/doc/lomiri-wallpapers-16.04/copyright", "lomiri-wallpapers.copyright"),
    ("plasma-workspace-wallpapers", "/usr/share/doc/plasma-workspace-wallpapers/copyright", "plasma-workspace-wallpapers.copyright"),
    ("lxqt-themes", "/usr/share/doc/lxqt-themes/copyright", "lxqt-themes.copyright"),
    ("lxqt-themes", LXQT + "License", "lxqt-themes.wallpapers-License"),
    ("tuxpaint-data", "/usr/share/doc/tuxpaint-data/copyright", "tuxpaint-data.copyright"),
    ("tuxpaint-data", "/usr/share/doc/tuxpaint-data/AUTHORS.txt.gz", "tuxpaint-data.AUTHORS.txt"),
    ("gcompris-qt-data", "/usr/share/doc/gcompris-qt-data/copyright", "gcompris-qt-data.copyright"),
    ("python3-skimage", "/usr/share/doc/python3-skimage/copyright", "python3-skimage.copyright"),
    ("python3-sklearn", "/usr/share/doc/python3-sklearn/copyright", "python3-sklearn.copyright"),
    ("python3-sklearn", SKL + "README.txt", "sklearn-images-README.txt"),
    ("kphotoalbum", "/usr/share/doc/kphotoalbum/copyright", "kphotoalbum.copyright"),
] + [("plasma-workspace-wallpapers", KDE + d + "/metadata.json", "plasma-%s.metadata.json" % d)
     for d in ("EveningGlow", "Path", "summer_1am", "FallenLeaf", "ColorfulCups")]
GCOMPRIS_READMES = ["erase", "explore_farm_animals", "explore_monuments", "explore_world_music"]
COMMON_LICENSES = ["GPL-2", "GPL-3", "LGPL-2.1", "LGPL-3", "CC0-1.0"]  # from Debian's base-files
SKIMAGE_FUNCS = ["astronaut", "camera", "chelsea", "coffee", "rocket"]


def read_rcc(data, want):
    """Return the bytes of resource `want` (":/a/b/c") from a Qt .rcc file."""
    assert data[:4] == b"qres", "not a Qt resource file"
    ver, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node = 14 if ver == 1 else 22

    def name(off):
        p = names + off
        (n,) = struct.unpack(">H", data[p:p + 2])
        return data[p + 6:p + 6 + 2 * n].decode("utf-16-be")

    idx = 0
    for part in want.lstrip(":/").split("/"):
        p = tree + idx * node
        flags, count, first = struct.unpack(">HII", data[p + 4:p + 14])
        assert flags & 2, "not a directory"
        for c in range(first, first + count):
            (noff,) = struct.unpack(">I", data[tree + c * node:tree + c * node + 4])
            if name(noff) == part:
                idx = c
                break
        else:
            raise KeyError(want)
    p = tree + idx * node
    (flags,) = struct.unpack(">H", data[p + 4:p + 6])
    (off,) = struct.unpack(">I", data[p + 10:p + 14])
    (size,) = struct.unpack(">I", data[payload + off:payload + off + 4])
    blob = data[payload + off + 4:payload + off + 4 + size]
    if flags & 1:  # zlib (qCompress: 4-byte length, then the stream)
        blob = zlib.decompress(blob[4:])
    assert not flags & 4, "zstd-compressed resources are not handled"
    return blob


def fetch(work):
    """apt-get download the pinned packages and unpack them under work/x/PKG."""
    debs = os.path.join(work, "debs")
    os.makedirs(debs, exist_ok=True)
    for pkg, ver in PKGS.items():
        root = os.path.join(work, "x", pkg)
        if os.path.isdir(root):
            continue
        subprocess.run(["apt-get", "download", "%s=%s" % (pkg, ver)], cwd=debs, check=True)
        deb = [f for f in os.listdir(debs) if f.startswith(pkg + "_")][0]
        got = subprocess.run(["dpkg-deb", "-f", os.path.join(debs, deb), "Version"],
                             check=True, capture_output=True, text=True).stdout.strip()
        assert got == ver, (pkg, got, ver)
        os.makedirs(root)
        subprocess.run(["dpkg-deb", "-x", os.path.join(debs, deb), root], check=True)


def source_bytes(work, entry):
    pkg, path = entry[2], entry[3]
    raw = open(os.path.join(work, "x", pkg) + path, "rb").read()
    if path.endswith(".rcc"):
        raw = read_rcc(raw, entry[4])
    return raw


def to_jpeg(raw, out):
    from PIL import Image, ImageCms, ImageOps

    im = Image.open(io.BytesIO(raw))
    im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile")
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    if icc and im.mode in ("RGB", "RGBA", "CMYK"):
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        im = ImageCms.profileToProfile(im.convert("RGB") if im.mode == "RGBA" else im,
                                       src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    im = im.convert("RGB")
    w, h = im.size
    s = min(1.0, 512.0 / max(w, h))
    if s < 1.0:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    im.info.clear()  # Pillow would carry a JPEG comment over; exif/icc are only written if passed
    im.save(out, "JPEG", quality=90, optimize=True)


def skimage_notes(work):
    import ast

    src = open(os.path.join(work, "x", "python3-skimage") + SKI + "_fetchers.py").read()
    out = ["Docstrings of skimage.data functions, from %s_fetchers.py in python3-skimage %s.\n"
           "They are the licence statements for the images used here.\n" % (SKI, PKGS["python3-skimage"])]
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and node.name in SKIMAGE_FUNCS:
            out.append("=== skimage.data.%s() ===\n%s\n" % (node.name, ast.get_docstring(node)))
    return "\n".join(out)


def copy_licenses(work, dest):
    os.makedirs(dest, exist_ok=True)
    for pkg, path, name in LICENSE_FILES:
        src = os.path.join(work, "x", pkg) + path
        if src.endswith(".gz"):
            import gzip
            data = gzip.open(src).read()
        else:
            data = open(src, "rb").read()
        open(os.path.join(dest, name), "wb").write(data)
    rcc_dir = os.path.join(work, "x", "gcompris-qt-data") + RCC
    for act in GCOMPRIS_READMES:
        data = read_rcc(open(os.path.join(rcc_dir, act + ".rcc"), "rb").read(),
                        GC + act + ("/resource/music/README" if act == "explore_world_music" else
                                    "/resource/animals/README" if act == "explore_farm_animals" else
                                    "/resource/README"))
        open(os.path.join(dest, "gcompris-%s-README" % act), "wb").write(data)
    for lic in COMMON_LICENSES:
        shutil.copyfile("/usr/share/common-licenses/" + lic, os.path.join(dest, lic))
    open(os.path.join(dest, "skimage-data-notes.txt"), "w").write(skimage_notes(work))


def table():
    print("| file | subject | package (version) | original path in package | author / copyright holder | licence | licence text |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for e in PHOTOS:
        name, subject, pkg, path = e[:4]
        where = "`%s` → `%s`" % (path, e[4]) if path.endswith(".rcc") else "`%s`" % path
        author, lic, text = e[-3:]
        print("| `%s` | %s | %s %s | %s | %s | %s | %s |" % (name, subject, pkg, PKGS[pkg], where, author, lic, text))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/photos-work", help="download/unpack folder")
    ap.add_argument("--out", default=HERE, help="output folder (default: this script's folder)")
    ap.add_argument("--table", action="store_true", help="print the README table and exit")
    a = ap.parse_args()
    if a.table:
        return table()
    fetch(a.work)
    for e in PHOTOS:
        to_jpeg(source_bytes(a.work, e), os.path.join(a.out, e[0]))
    copy_licenses(a.work, os.path.join(a.out, "licenses"))
    print("%d photos written to %s" % (len(PHOTOS), a.out))


if __name__ == "__main__":
    sys.exit(main())
