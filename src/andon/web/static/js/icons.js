// State icons as small SVGs (shape differs per state, so state never rests on colour alone).

import { s } from './dom.js';

const SHAPES = {
  running: () => [s('path', { d: 'M5 3 L13 8 L5 13 Z' })],
  starved: () => [s('circle', { cx: 8, cy: 8, r: 5, fill: 'none', 'stroke-width': 2,
    stroke: 'currentColor', 'stroke-dasharray': '3 2' })],
  blocked: () => [s('rect', { x: 3, y: 3, width: 10, height: 10 })],
  down: () => [s('path', { d: 'M3.5 5 L5 3.5 L8 6.5 L11 3.5 L12.5 5 L9.5 8 L12.5 11 L11 12.5 '
    + 'L8 9.5 L5 12.5 L3.5 11 L6.5 8 Z' })],
  planned_stop: () => [s('rect', { x: 4, y: 3, width: 3, height: 10 }),
    s('rect', { x: 9, y: 3, width: 3, height: 10 })],
  offline: () => [s('circle', { cx: 8, cy: 8, r: 5, fill: 'none', stroke: 'currentColor',
    'stroke-width': 2 }), s('path', { d: 'M4.5 11.5 L11.5 4.5', stroke: 'currentColor',
    'stroke-width': 2 })],
  unknown: () => [s('circle', { cx: 8, cy: 8, r: 2 })],
  // outside the shift calendar: a crescent (the plant is closed), not the offline cross
  not_scheduled: () => [s('path', { d: 'M10 2.5 A5.5 5.5 0 1 0 13.5 10 A4.5 4.5 0 0 1 10 2.5 Z' })],
};

export function stateIcon(state) {
  const svg = s('svg', { viewBox: '0 0 16 16', width: 16, height: 16, class: 'state-icon',
    'aria-hidden': 'true', fill: 'currentColor', focusable: 'false' });
  svg.append(...(SHAPES[state] || SHAPES.unknown)());
  return svg;
}

export function setStateIcon(svg, state) {
  while (svg.firstChild) svg.firstChild.remove();
  svg.append(...(SHAPES[state] || SHAPES.unknown)());
}

export const STATES = ['running', 'starved', 'blocked', 'down', 'planned_stop', 'offline'];
