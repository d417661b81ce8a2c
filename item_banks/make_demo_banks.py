#!/usr/bin/env python3
"""Make the cat-prom demo item banks (seeded and deterministic).

Every bank in ``item_banks/*.json`` is written by this script:

1. the item wording below, written for cat-prom (not taken from PROMIS,
   PRO-CTCAE, BPI, EORTC or any other instrument);
2. *true* GRM parameters drawn from a seeded generator, chosen to look like
   real pain-care item banks (slopes about 1.5-3.5; thresholds over roughly
   -1..3 for symptoms, where most people have few problems, and mirrored for
   physical function, where higher is better);
3. a simulated calibration sample (persons with θ ~ N(0, 1), each answering
   every item, a few answers missing completely at random);
4. calibration of that sample with the project's own Bock-Aitkin EM
   (:func:`cat_prom.calibration.calibrate`); the *estimates*, not the true
   values, go into the bank, as they would for a real calibration;
5. ``ItemBank.save`` (validates the document and adds its content hash).

The banks are demonstrations and are NOT clinically validated.

Usage::

    python item_banks/make_demo_banks.py             # (re)write item_banks/*.json
    python item_banks/make_demo_banks.py --out DIR   # write elsewhere
    python item_banks/make_demo_banks.py --check     # regenerate in a temp dir, compare byte for byte

The bytes depend on numpy, scipy and cat-prom (the calibration code): each
file records the versions it was made with, and ``--check`` is meaningful only
with the same versions installed.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

import cat_prom  # noqa: E402
from cat_prom.bank import DEMO_DISCLAIMER, ItemBank  # noqa: E402
from cat_prom.calibration import calibrate, simulate_responses  # noqa: E402

SEED = 20261122
DATE = "2026-11-22"  # fixed, so that the files are reproducible
VERSION = "0.1.0"
N_PERSONS = 3000
MISSING_RATE = 0.03
METHOD = "Bock-Aitkin EM marginal ML (cat-prom)"
DECIMALS = 4  # parameters are stored rounded, which also keeps the bytes stable

# --------------------------------------------------------------------------- response options
OPTIONS = {
    "amount": ["Not at all", "A little bit", "Somewhat", "Quite a bit", "Very much"],
    "often": ["Never", "Rarely", "Sometimes", "Often", "Always"],
    "strength": ["No pain", "Mild", "Moderate", "Severe", "Very severe"],
    "able": ["Unable to do", "With great difficulty", "With some difficulty", "With a little difficulty",
             "Without any difficulty"],
    "slept": ["Very well", "Well", "Fairly well", "Badly", "Very badly"],
    "duration": ["I had no nausea", "A few minutes", "Up to an hour", "Several hours", "Most of the day"],
}

SYMPTOM_BANDS = [
    {"label": "within normal limits", "min_t": None, "max_t": 55.0},
    {"label": "mild", "min_t": 55.0, "max_t": 60.0},
    {"label": "moderate", "min_t": 60.0, "max_t": 70.0},
    {"label": "severe", "min_t": 70.0, "max_t": None},
]
FUNCTION_BANDS = [
    {"label": "severe", "min_t": None, "max_t": 30.0},
    {"label": "moderate", "min_t": 30.0, "max_t": 40.0},
    {"label": "mild", "min_t": 40.0, "max_t": 45.0},
    {"label": "within normal limits", "min_t": 45.0, "max_t": None},
]

PAST_7 = "Please think about the past 7 days. For each question, choose the answer that fits you best."

# Each item: (id, stem, option set, level, content tags). ``level`` (1 mild .. 3 severe) only shapes
# the true parameters: a level-3 item describes a worse state (a symptom) or a harder task (function).
BANKS = [
    {
        "id": "pain-intensity",
        "name": "Pain intensity (demo)",
        "domain": "pain intensity",
        "recall_period": "past 7 days (one item asks about right now)",
        "direction": "higher_is_worse",
        "description": "How strong the patient's pain is and how often it is present.",
        "instructions": "Please think about your pain over the past 7 days, unless a question asks about "
                        "right now. Choose the answer that fits you best.",
        "start_item": "PINT02",
        "base": 0.2,
        "enemies": [("PINT08", "PINT10")],
        "items": [
            ("PINT01", "Think of the moment your pain was worst in the past 7 days. How strong was it?",
             "strength", 1, ["worst"]),
            ("PINT02", "On an ordinary day in the past 7 days, how strong was your pain?",
             "strength", 2, ["average"]),
            ("PINT03", "How much pain do you have at this moment?", "strength", 2, ["current"]),
            ("PINT04", "Even when it eased off most, how strong was your pain in the past 7 days?",
             "strength", 3, ["least"]),
            ("PINT05", "How often were you in pain in the past 7 days?", "often", 1, ["frequency"]),
            ("PINT06", "How often was your pain so strong that you could think of nothing else?", "often", 3,
             ["frequency", "worst"]),
            ("PINT07", "How strong was your pain when you were moving about or being active?", "strength", 1,
             ["movement"]),
            ("PINT08", "How strong was your pain while you were sitting or lying still?", "strength", 2, ["rest"]),
            ("PINT09", "How often did a sudden flare of strong pain break through your usual pain?", "often", 2,
             ["frequency", "flare"]),
            ("PINT10", "How strong was your pain during the night or when you woke up?", "strength", 2, ["rest"]),
        ],
    },
    {
        "id": "pain-interference",
        "name": "Pain interference (demo)",
        "domain": "pain interference",
        "recall_period": "past 7 days",
        "direction": "higher_is_worse",
        "description": "How much pain gets in the way of work, home life, sleep, mood, enjoyment, social life "
                       "and concentration.",
        "instructions": PAST_7,
        "start_item": "PINF01",
        "base": 0.4,
        "enemies": [("PINF01", "PINF34"), ("PINF10", "PINF12"), ("PINF17", "PINF19"), ("PINF02", "PINF05")],
        "items": [
            ("PINF01", "How much did pain hold you back in your everyday activities?", "amount", 2,
             ["daily_activities"]),
            ("PINF02", "How much did pain make it harder to do your job or your studies?", "amount", 2, ["work"]),
            ("PINF03", "How often did you have to stop working earlier than you planned because of pain?", "often",
             2, ["work"]),
            ("PINF04", "How often did pain make you take time off work, school or volunteering?", "often", 3,
             ["work"]),
            ("PINF05", "How much did pain slow you down at work or in your main daily role?", "amount", 2,
             ["work"]),
            ("PINF06", "How much did pain make housework, such as cleaning or laundry, harder?", "amount", 1,
             ["household"]),
            ("PINF07", "How often did you leave jobs around the house unfinished because of pain?", "often", 2,
             ["household"]),
            ("PINF08", "How much did pain make shopping or running errands harder?", "amount", 2, ["household"]),
            ("PINF09", "How much did pain make cooking or getting a meal ready harder?", "amount", 3,
             ["household"]),
            ("PINF10", "How much did pain keep you awake when you were trying to get to sleep?",
             "amount", 2, ["sleep"]),
            ("PINF11", "How often did pain wake you up during the night?", "often", 2, ["sleep"]),
            ("PINF12", "How much did pain keep you from getting a good night's rest?", "amount", 2, ["sleep"]),
            ("PINF13", "How much did pain leave you feeling low or down?", "amount", 2, ["mood"]),
            ("PINF14", "How often did pain make you snap at people or lose your patience?", "often", 2, ["mood"]),
            ("PINF15", "How much did pain make you feel worried or on edge?", "amount", 2, ["mood"]),
            ("PINF16", "How often did pain make you feel that you could not cope?", "often", 3, ["mood"]),
            ("PINF17", "How much did pain take the fun out of things you usually like to do?", "amount", 1,
             ["enjoyment"]),
            ("PINF18", "How often did pain stop you from doing a hobby or pastime?", "often", 2, ["enjoyment"]),
            ("PINF19", "How much did pain spoil your enjoyment of life in general?", "amount", 2, ["enjoyment"]),
            ("PINF20", "How much did pain make it hard for you to relax?", "amount", 1, ["mood", "enjoyment"]),
            ("PINF21", "How often did you cancel plans with friends or family because of pain?", "often", 3,
             ["social"]),
            ("PINF22", "How much did pain cut down the time you spent with other people?", "amount", 2,
             ["social"]),
            ("PINF23", "How much did pain make it harder to go out, for example to visit someone or attend an "
                       "event?", "amount", 2, ["social"]),
            ("PINF24", "How much did pain put a strain on your relationships with the people close to you?",
             "amount", 3, ["social"]),
            ("PINF25", "How much did pain make it harder to look after family members or others who rely on you?",
             "amount", 2, ["social", "household"]),
            ("PINF26", "How much did pain pull your attention away from what you were doing?",
             "amount", 2, ["concentration"]),
            ("PINF27", "How often did pain make you lose track of what you were reading or watching?", "often", 3,
             ["concentration"]),
            ("PINF28", "How much did pain cloud your thinking or make decisions harder?", "amount", 3,
             ["concentration"]),
            ("PINF29", "How much did pain limit how far you could walk?", "amount", 1, ["physical_activity"]),
            ("PINF30", "How much did pain limit how long you could sit or stand in one place?", "amount", 1,
             ["physical_activity"]),
            ("PINF31", "How much did pain make exercise or sport harder for you?", "amount", 1,
             ["physical_activity", "enjoyment"]),
            ("PINF32", "How much did pain make washing, dressing or other personal care harder?", "amount", 3,
             ["self_care"]),
            ("PINF33", "How often did pain keep you in bed or on the sofa for most of the day?", "often", 3,
             ["daily_activities"]),
            ("PINF34", "How much did pain change what you were able to do on a typical day?", "amount", 2,
             ["daily_activities"]),
            ("PINF35", "How often did you have to plan your day around your pain?", "often", 2,
             ["daily_activities"]),
            ("PINF36", "How much did pain make it harder to travel, drive or use public transport?", "amount", 2,
             ["daily_activities", "social"]),
        ],
    },
    {
        "id": "physical-function",
        "name": "Physical function (demo)",
        "domain": "physical function",
        "recall_period": "past 7 days",
        "direction": "higher_is_better",
        "description": "What the patient is able to do: moving about, self-care, using the arms and hands, "
                       "household tasks and exercise. Higher scores mean better function.",
        "instructions": "Please think about the past 7 days. Answer for what you are able to do on your own, "
                        "using any walking aid or device you normally use.",
        "start_item": "PF04",
        "base": 0.3,
        "enemies": [("PF04", "PF05"), ("PF07", "PF08")],
        "items": [
            ("PF01", "Are you able to get up from lying in bed to standing?", "able", 1, ["mobility"]),
            ("PF02", "Are you able to walk from one room to another inside your home?", "able", 1, ["mobility"]),
            ("PF03", "Are you able to walk up a flight of stairs, holding the handrail if you need to?", "able", 2,
             ["mobility"]),
            ("PF04", "Are you able to walk to a shop or a bus stop about 10 minutes away?", "able", 2, ["mobility"]),
            ("PF05", "Are you able to walk one kilometre (just over half a mile) on level ground?", "able", 2,
             ["mobility"]),
            ("PF06", "Are you able to walk up a steep hill?", "able", 3, ["mobility"]),
            ("PF07", "Are you able to jog or run for 5 minutes without stopping?", "able", 3, ["exercise"]),
            ("PF08", "Are you able to hurry for a minute or two, for example to cross the road before the lights "
                     "change?", "able", 3, ["exercise"]),
            ("PF09", "Are you able to climb the stairs of a three-storey building without stopping for a rest?",
             "able", 3, ["mobility"]),
            ("PF10", "Are you able to sit down in a car seat and climb out again?", "able", 1, ["mobility"]),
            ("PF11", "Are you able to stand up from a low, soft sofa without pushing up with your arms?", "able",
             2, ["mobility"]),
            ("PF12", "Are you able to reach down and pick up a coin or a sock that has fallen on the floor?",
             "able", 2, ["bending"]),
            ("PF13", "Are you able to kneel down and get back up again?", "able", 3, ["bending"]),
            ("PF14", "Are you able to stand for half an hour, for example while waiting in a queue?", "able", 2,
             ["mobility"]),
            ("PF15", "Are you able to sit for an hour, for example at a desk or at the cinema?", "able", 1,
             ["mobility"]),
            ("PF16", "Are you able to bend forward far enough to put on socks and shoes?",
             "able", 1, ["self_care", "bending"]),
            ("PF17", "Are you able to wash yourself all over, including your back and feet?",
             "able", 1, ["self_care"]),
            ("PF18", "Are you able to sit down on the toilet and stand up again?", "able", 1, ["self_care"]),
            ("PF19", "Are you able to step into and out of a bath or shower?", "able", 2, ["self_care"]),
            ("PF20", "Are you able to do up buttons and zips on your clothes?", "able", 1, ["arms_hands"]),
            ("PF21", "Are you able to lift a full shopping bag from the floor onto a table?", "able", 2,
             ["arms_hands"]),
            ("PF22", "Are you able to reach up and take something down from a high shelf?", "able", 2,
             ["arms_hands"]),
            ("PF23", "Are you able to carry a heavy load, such as a full crate of drinks, for a short distance?",
             "able", 3, ["arms_hands", "mobility"]),
            ("PF24", "Are you able to twist open a tight jar lid?", "able", 2, ["arms_hands"]),
            ("PF25", "Are you able to clean the floors of your home with a vacuum cleaner or a mop?",
             "able", 2, ["household"]),
            ("PF26", "Are you able to make a bed, including putting on clean sheets?", "able", 2, ["household"]),
            ("PF27", "Are you able to do the weekly food shopping by yourself?", "able", 2, ["household"]),
            ("PF28", "Are you able to cook a hot meal for yourself?", "able", 1, ["household"]),
            ("PF29", "Are you able to dig a garden bed or shovel snow?", "able", 3,
             ["household"]),
            ("PF30", "Are you able to do 30 minutes of moderate exercise, such as brisk walking or cycling?",
             "able", 3, ["exercise"]),
            ("PF31", "Are you able to do 30 minutes of hard exercise, such as swimming lengths or playing "
                     "football?", "able", 3, ["exercise"]),
            ("PF32", "Are you able to get on and off a bus or a train?", "able", 2, ["mobility"]),
            ("PF33", "Are you able to walk on uneven ground, such as a grassy field or a forest path?", "able", 2,
             ["mobility"]),
            ("PF34", "Are you able to move a heavy piece of furniture, such as a sofa, across a room?", "able", 3,
             ["arms_hands", "household"]),
            ("PF35", "Are you able to hold your arms above your head long enough to brush or dry your hair?",
             "able", 1, ["self_care", "arms_hands"]),
        ],
    },
    {
        "id": "sleep-disturbance",
        "name": "Sleep disturbance (demo)",
        "domain": "sleep disturbance",
        "recall_period": "past 7 days",
        "direction": "higher_is_worse",
        "description": "Trouble falling asleep, staying asleep and sleeping well.",
        "instructions": PAST_7,
        "start_item": "SLP04",
        "base": 0.3,
        "enemies": [("SLP04", "SLP10"), ("SLP02", "SLP11")],
        "items": [
            ("SLP01", "Overall, how well did you sleep?", "slept", 1, ["quality"]),
            ("SLP02", "How often did it take you longer than half an hour to fall asleep?", "often", 2,
             ["falling_asleep"]),
            ("SLP03", "How often did you lie awake in bed, unable to switch off?", "often", 2, ["falling_asleep"]),
            ("SLP04", "How often, after waking in the night, did you stay awake for a long time?", "often", 2,
             ["staying_asleep"]),
            ("SLP05", "How often were you awake long before your usual getting-up time?",
             "often", 2, ["staying_asleep"]),
            ("SLP06", "How often did you get up in the morning feeling as tired as when you went to bed?", "often", 1,
             ["quality"]),
            ("SLP07", "How unsettled was your sleep?", "amount", 2, ["quality"]),
            ("SLP08", "How anxious did you feel at bedtime about whether you would sleep?", "amount", 3, ["worry"]),
            ("SLP09", "How often did you sleep so lightly that small noises woke you?", "often", 2,
             ["staying_asleep"]),
            ("SLP10", "How hard was it for you to sleep through the night?", "amount", 2, ["staying_asleep"]),
            ("SLP11", "How much trouble did you have getting to sleep?", "amount", 2, ["falling_asleep"]),
            ("SLP12", "How often did you feel short of sleep?", "often", 1, ["quality"]),
            ("SLP13", "How often did you shift about in bed, unable to get comfortable?", "often", 1, ["quality"]),
            ("SLP14", "How often did you get up in the night because you could not sleep?", "often", 3,
             ["staying_asleep"]),
            ("SLP15", "How often did you dread going to bed because of how badly you might sleep?", "often", 3,
             ["worry"]),
            ("SLP16", "How much did poor sleep bother you?", "amount", 2, ["quality"]),
            ("SLP17", "How often did you need a nap or a lie-down in the day to make up for lost sleep?", "often",
             3, ["daytime"]),
            ("SLP18", "How often did your sleep feel broken up into short pieces?", "often", 2,
             ["staying_asleep"]),
        ],
    },
    {
        "id": "fatigue",
        "name": "Fatigue (demo)",
        "domain": "fatigue",
        "recall_period": "past 7 days",
        "direction": "higher_is_worse",
        "description": "Tiredness, lack of energy and how much they get in the way.",
        "instructions": PAST_7,
        "start_item": "FAT04",
        "base": 0.3,
        "enemies": [("FAT01", "FAT13"), ("FAT05", "FAT16")],
        "items": [
            ("FAT01", "How much tiredness did you feel on a typical day?", "amount", 1, ["experience"]),
            ("FAT02", "How often was your energy used up before the day was over?", "often", 2,
             ["experience"]),
            ("FAT03", "How often did you feel too worn out to do the things you wanted to do?", "often", 2,
             ["impact"]),
            ("FAT04", "How much did tiredness slow you down?", "amount", 2, ["impact"]),
            ("FAT05", "How often did you have to stop what you were doing to rest?", "often", 2, ["impact"]),
            ("FAT06", "How much effort did it take you to get started on everyday tasks?", "amount", 2,
             ["experience"]),
            ("FAT07", "How often did you feel exhausted even after a night's sleep?", "often", 2, ["experience"]),
            ("FAT08", "How heavy or weak did your arms and legs feel?", "amount", 2, ["experience"]),
            ("FAT09", "How often were washing and dressing too much for you because you were so tired?",
             "often", 3, ["impact"]),
            ("FAT10", "How much did tiredness make it hard to keep your mind on things?", "amount", 2, ["impact"]),
            ("FAT11", "How often did getting through the day take all your willpower?", "often", 2,
             ["experience"]),
            ("FAT12", "How often did you turn down seeing friends or family because you had no energy left?",
             "often", 3, ["impact"]),
            ("FAT13", "How drained of energy did you feel?", "amount", 1, ["experience"]),
            ("FAT14", "How often did tiredness stop you from finishing something you had started?", "often", 2,
             ["impact"]),
            ("FAT15", "How much did even small tasks wear you out?", "amount", 3, ["experience"]),
            ("FAT16", "How often did you spend most of the day resting because you were so tired?", "often", 3,
             ["impact"]),
            ("FAT17", "How often did you feel sleepy or sluggish in the afternoon?", "often", 1, ["experience"]),
            ("FAT18", "How much did tiredness affect your mood?", "amount", 2, ["impact"]),
        ],
    },
    {
        "id": "constipation",
        "name": "Constipation (demo analgesic side effect)",
        "domain": "constipation",
        "recall_period": "past 7 days",
        "direction": "higher_is_worse",
        "description": "Constipation, a common side effect of opioid pain medicines.",
        "instructions": PAST_7,
        "start_item": "CON01",
        "base": 1.0,
        "enemies": [("CON02", "CON09")],
        "items": [
            ("CON01", "How much were you bothered by constipation?", "amount", 2, ["general"]),
            ("CON02", "How often did you have to strain to have a bowel movement?", "often", 2, ["straining"]),
            ("CON03", "How often were your stools hard or lumpy?", "often", 2, ["stool"]),
            ("CON04", "How often did you feel that your bowels had not emptied completely?", "often", 2,
             ["straining"]),
            ("CON05", "How often did you go two or more days without a bowel movement?", "often", 1, ["stool"]),
            ("CON06", "How much were you troubled by bloating or a full feeling in your belly?",
             "amount", 1, ["discomfort"]),
            ("CON07", "How much did passing a stool hurt or feel uncomfortable?", "amount", 3,
             ["discomfort"]),
            ("CON08", "How often did you need a laxative, an enema or other help to have a bowel movement?",
             "often", 3, ["treatment"]),
            ("CON09", "How often did you sit on the toilet for a long time without being able to go?", "often", 3,
             ["straining"]),
            ("CON10", "How much did constipation put you off eating?", "amount", 3, ["impact"]),
        ],
    },
    {
        "id": "nausea",
        "name": "Nausea (demo analgesic side effect)",
        "domain": "nausea",
        "recall_period": "past 7 days",
        "direction": "higher_is_worse",
        "description": "Feeling sick to the stomach and vomiting, common side effects of pain medicines.",
        "instructions": PAST_7,
        "start_item": "NAU01",
        "base": 1.1,
        "enemies": [("NAU01", "NAU02")],
        "items": [
            ("NAU01", "How much were you bothered by feeling sick to your stomach (nausea)?", "amount", 2,
             ["general"]),
            ("NAU02", "How often did you feel queasy or sick to your stomach?", "often", 2, ["general"]),
            ("NAU03", "How often did you feel sick after taking your pain medicine?", "often", 2, ["medicine"]),
            ("NAU04", "How often did you throw up or retch?", "often", 3, ["vomiting"]),
            ("NAU05", "How much did nausea put you off your food?", "amount", 2, ["impact"]),
            ("NAU06", "How often did the smell or sight of food make you feel sick?", "often", 2, ["general"]),
            ("NAU07", "When you felt sick, how long did it usually last?", "duration", 1, ["general"]),
            ("NAU08", "How much did nausea stop you from doing your usual activities?", "amount", 3, ["impact"]),
            ("NAU09", "How often did you have to lie down or keep still because you felt sick?", "often", 3,
             ["impact"]),
            ("NAU10", "How much did nausea make it hard to take your medicines or drink enough?", "amount", 3,
             ["medicine", "impact"]),
        ],
    },
    {
        "id": "drowsiness",
        "name": "Drowsiness and muddled thinking (demo analgesic side effect)",
        "domain": "drowsiness and muddled thinking",
        "recall_period": "past 7 days",
        "direction": "higher_is_worse",
        "description": "Sleepiness during the day and slowed or muddled thinking, common side effects of opioid "
                       "and other pain medicines.",
        "instructions": PAST_7,
        "start_item": "DRW01",
        "base": 0.9,
        "enemies": [("DRW01", "DRW02")],
        "items": [
            ("DRW01", "How much were you bothered by feeling drowsy or foggy in the head?", "amount", 2,
             ["general"]),
            ("DRW02", "How often did you feel drowsy during the day?", "often", 1, ["drowsiness"]),
            ("DRW03", "How often did you doze off without meaning to, for example while reading or watching TV?",
             "often", 2, ["drowsiness"]),
            ("DRW04", "How often did your thinking feel slow or muddled?", "often", 2, ["thinking"]),
            ("DRW05", "How often did you forget things, such as appointments or where you had put "
                      "something?", "often", 2, ["thinking"]),
            ("DRW06", "How often did you lose your train of thought in the middle of a conversation?", "often", 2,
             ["thinking"]),
            ("DRW07", "How often did you feel confused about what was going on around you?", "often", 3,
             ["thinking"]),
            ("DRW08", "How often did you feel too drowsy to do things that need you to stay alert, such as "
                      "driving or cooking?", "often", 3, ["drowsiness", "impact"]),
            ("DRW09", "How often did you feel light-headed or 'spaced out' after taking your pain medicine?",
             "often", 2, ["medicine"]),
            ("DRW10", "How much did drowsiness or muddled thinking get in the way of your daily activities?",
             "amount", 3, ["impact"]),
        ],
    },
]

# location offset of an item by level, on the symptom metric (mirrored for function)
LEVEL_OFFSET = {1: -0.6, 2: 0.0, 3: 0.7}
THRESHOLD_CAP = 2.8  # keeps the top category observed often enough in a sample of N_PERSONS


def bank_seed(k: int) -> int:
    """The seed of bank number ``k`` (0-based, in the order of BANKS)."""
    return SEED * 100 + k + 1


def true_parameters(spec: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Generating GRM parameters: slopes (n,), thresholds (n, 4), on the bank's own direction."""
    items = spec["items"]
    n = len(items)
    sign = -1.0 if spec["direction"] == "higher_is_better" else 1.0
    a = np.clip(np.exp(rng.normal(np.log(2.4), 0.22, n)), 1.5, 3.5)
    level = np.array([it[3] for it in items])
    if sign < 0:  # a hard task (level 3) sits where a mild symptom would, before mirroring
        level = 4 - level
    loc = spec["base"] + np.array([LEVEL_OFFSET[v] for v in level]) + rng.normal(0.0, 0.15, n)
    b1 = loc - rng.uniform(0.8, 1.1, n)
    steps = rng.uniform(0.45, 0.9, (n, 3))
    b = np.concatenate([b1[:, None], b1[:, None] + np.cumsum(steps, axis=1)], axis=1)
    b = np.minimum(b, THRESHOLD_CAP - np.array([1.5, 1.0, 0.5, 0.0]))  # stays increasing
    if sign < 0:  # function: a harder task needs a higher θ (better function); mirror the symptom layout
        b = -b[:, ::-1]
    return a, b


def _round_list(x) -> list:
    return [round(float(v), DECIMALS) for v in x]


def make_bank(k: int, spec: dict) -> tuple[dict, dict]:
    """Simulate and calibrate one bank; returns (bank document, report)."""
    seed = bank_seed(k)
    rng = np.random.default_rng(seed)
    a_true, b_true = true_parameters(spec, rng)
    n_items = len(spec["items"])
    theta = rng.standard_normal(N_PERSONS)
    missing = rng.random((N_PERSONS, n_items)) < MISSING_RATE
    x = simulate_responses(theta, (a_true, b_true), rng, missing=missing)
    ids = [it[0] for it in spec["items"]]
    res = calibrate(x, "grm", ids=ids, n_categories=5)
    if not res.converged or res.issues:
        raise SystemExit(f"{spec['id']}: calibration did not converge cleanly: {[i.message for i in res.issues]}")
    if res.sparse_categories:
        raise SystemExit(f"{spec['id']}: sparse categories {res.sparse_categories}; change the seed or the cap")
    a_hat = np.round(res.a, DECIMALS)
    b_hat = np.round(res.b, DECIMALS)
    enemies: dict[str, list[str]] = {}
    for i, j in spec["enemies"]:
        enemies.setdefault(i, []).append(j)
        enemies.setdefault(j, []).append(i)
    items = []
    for q, (iid, stem, opt, _level, tags) in enumerate(spec["items"]):
        item = {
            "id": iid,
            "stem": stem,
            "options": [{"value": v + 1, "label": lab} for v, lab in enumerate(OPTIONS[opt])],
            "a": float(a_hat[q]),
            "thresholds": _round_list(b_hat[q]),
            "content": list(tags),
        }
        if iid in enemies:
            item["enemies"] = sorted(enemies[iid])
        items.append(item)
    n_missing = int(missing.sum())
    rec = {
        "rmse_a": round(float(np.sqrt(np.mean((a_hat - a_true) ** 2))), 3),
        "rmse_thresholds": round(float(np.sqrt(np.mean((b_hat - b_true) ** 2))), 3),
        "corr_a": round(float(np.corrcoef(a_hat, a_true)[0, 1]), 3),
        "corr_thresholds": round(float(np.corrcoef(b_hat.ravel(), b_true.ravel())[0, 1]), 3),
    }
    doc = {
        "format": "cat-prom-bank/1",
        "id": spec["id"],
        "name": spec["name"],
        "version": VERSION,
        "domain": spec["domain"],
        "language": "en",
        "recall_period": spec["recall_period"],
        "model": "grm",
        "metric": {"t_mean": 50.0, "t_sd": 10.0, "direction": spec["direction"]},
        "severity_bands": FUNCTION_BANDS if spec["direction"] == "higher_is_better" else SYMPTOM_BANDS,
        "start_item": spec["start_item"],
        "demo": True,
        "disclaimer": DEMO_DISCLAIMER,
        "description": spec["description"] + " " + DEMO_DISCLAIMER,
        "instructions": spec["instructions"],
        "items": items,
        "provenance": {
            "method": METHOD,
            "sample": f"simulated: {N_PERSONS} persons, θ~N(0,1), {MISSING_RATE:.0%} MCAR missing, seed {seed}",
            "date": DATE,
            "software": {"numpy": np.__version__, "scipy": scipy.__version__, "cat-prom": cat_prom.__version__},
            "generator": "item_banks/make_demo_banks.py",
            "item_wording": "written for cat-prom; not taken from PROMIS, PRO-CTCAE, BPI, EORTC or any other "
                            "instrument",
            "clinically_validated": False,
            "calibration": {
                "model": "grm (D = 1)",
                "quadrature": "61 equally spaced nodes on [-6, 6], N(0, 1) weights",
                "n_persons": int(res.n_persons),
                "n_missing_responses": n_missing,
                "em_cycles": int(res.n_iter),
                "converged": bool(res.converged),
                "loglik": round(float(res.loglik), 2),
            },
            "recovery_of_generating_parameters": rec,
        },
    }
    report = {"id": spec["id"], "n_items": n_items, "em_cycles": int(res.n_iter), "seconds": res.elapsed_s, **rec}
    return doc, report


def write_banks(out: Path, quiet: bool = False) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for k, spec in enumerate(BANKS):
        doc, rep = make_bank(k, spec)
        bank = ItemBank.from_dict(doc)
        bank.save(out / f"{spec['id']}.json")
        reports.append(rep)
        if not quiet:
            print(f"{spec['id']:<20} {rep['n_items']:>3} items  EM {rep['em_cycles']:>3} cycles "
                  f"{rep['seconds']:5.2f} s  RMSE a {rep['rmse_a']:.3f}  RMSE b {rep['rmse_thresholds']:.3f}  "
                  f"r(a) {rep['corr_a']:.3f}  r(b) {rep['corr_thresholds']:.3f}")
    return reports


def check(folder: Path, quiet: bool = False) -> list[str]:
    """Regenerate in a temporary folder; return the names of files that differ from ``folder``."""
    with tempfile.TemporaryDirectory() as tmp:
        write_banks(Path(tmp), quiet=quiet)
        names = sorted(f"{spec['id']}.json" for spec in BANKS)
        _, mismatch, errors = filecmp.cmpfiles(folder, tmp, names, shallow=False)
        return sorted(mismatch + errors)


def recorded_versions(folder: Path) -> dict | None:
    """The software versions the committed banks were made with (None if there are none)."""
    p = folder / f"{BANKS[0]['id']}.json"
    if not p.exists():
        return None
    with open(p, encoding="utf-8") as fh:
        return json.load(fh)["provenance"]["software"]


def installed_versions() -> dict:
    return {"numpy": np.__version__, "scipy": scipy.__version__, "cat-prom": cat_prom.__version__}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="folder to write the banks to (default: item_banks/)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate in a temporary folder and compare with --out byte for byte")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.check:
        rec = recorded_versions(args.out)
        if rec is not None and rec != installed_versions():
            print(f"note: banks were made with {rec}, installed are {installed_versions()}; "
                  f"bytes may differ for that reason alone", file=sys.stderr)
        bad = check(args.out, quiet=args.quiet)
        if bad:
            print(f"DIFFERENT: {', '.join(bad)} (regenerate with python item_banks/make_demo_banks.py)")
            return 1
        if not args.quiet:
            print(f"all {len(BANKS)} banks reproduced byte for byte in {time.perf_counter() - t0:.1f} s")
        return 0
    write_banks(args.out, quiet=args.quiet)
    if not args.quiet:
        print(f"wrote {len(BANKS)} banks to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
