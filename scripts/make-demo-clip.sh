#!/usr/bin/env bash
# Renders examples/media/demo.mp4, the demo job's input, from two Big Buck Bunny clips
# ((c) 2008 Blender Foundation, www.bigbuckbunny.org, CC BY 3.0) in ../shared/media:
# 2 s of bigbuckbunny.mp4 then 2 s of Big_Buck_Bunny_180_10s.webm (a hard cut at frame 50),
# 320x180, 25 fps, 100 frames, H.264 + the first 4 s of bigbuckbunny.mp4's audio as stereo AAC.
set -euo pipefail
media=${1:-"$(dirname "$0")/../../shared/media"}
out=${2:-"$(dirname "$0")/../examples/media/demo.mp4"}
ffmpeg -hide_banner -loglevel error -y \
  -i "$media/bigbuckbunny.mp4" -ss 3 -i "$media/Big_Buck_Bunny_180_10s.webm" \
  -filter_complex "[0:v]trim=end_frame=50,scale=320:180,fps=25,setsar=1,setpts=PTS-STARTPTS[a];[1:v]fps=25,trim=end_frame=50,scale=320:180,setsar=1,setpts=PTS-STARTPTS[b];[a][b]concat=n=2:v=1:a=0[v];[0:a]atrim=end=4,aresample=48000,pan=stereo|FL<FL+0.7*FC+0.5*BL|FR<FR+0.7*FC+0.5*BR,asetpts=PTS-STARTPTS[au]" \
  -map "[v]" -map "[au]" -c:v libx264 -crf 20 -preset slow -pix_fmt yuv420p -c:a aac -b:a 96k \
  -movflags +faststart -metadata comment="Big Buck Bunny (c) 2008 Blender Foundation, CC BY 3.0" "$out"
echo "$out"
